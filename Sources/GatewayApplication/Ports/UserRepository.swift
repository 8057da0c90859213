/// Where users live. Implementations enforce, atomically, what must hold across instances: unique emails
/// (by `Email.canonical`), one user per Firebase uid, and optimistic locking on `version`.
///
/// Every change takes the domain events it causes and appends them to the event log in the same transaction
/// (the outbox): a change is never stored without its events, nor events without their change.
///
/// Errors: `DomainError` with `.alreadyExists`, `.notFound` or `.versionConflict` for the cases below;
/// anything else is a storage failure.
public protocol UserRepository: Sendable {
    /// Stores a new user; `.alreadyExists` when its email or Firebase uid is taken.
    func create(_ user: User, recording events: [PendingEvent]) async throws

    func user(id: UserID) async throws -> User?
    /// The user with this email, compared case-insensitively.
    func user(email: Email) async throws -> User?
    func user(firebaseUID: String) async throws -> User?

    /// Replaces the stored user with `user` if the stored version is `expectedVersion`
    /// (`.versionConflict` naming both otherwise, `.notFound` if it is gone, `.alreadyExists` if the new
    /// email is taken). `user.version` is what gets stored: the caller bumps it.
    func update(_ user: User, expectedVersion: Int64, recording events: [PendingEvent]) async throws

    /// Removes the user and its sessions; returns what was removed. With `expectedVersion`, only if the
    /// stored version is that one.
    func delete(id: UserID, expectedVersion: Int64?, recording events: [PendingEvent]) async throws -> User

    /// Up to `limit` users with ids after `after`, in ascending id order (keyset paging: stable while
    /// users are added and removed).
    func list(after: UserID?, limit: Int, activeOnly: Bool) async throws -> [User]

    func count(activeOnly: Bool) async throws -> Int64
}

/// Where sessions live.
public protocol SessionRepository: Sendable {
    /// Stores a new session; `.notFound` if its user does not exist.
    func create(_ session: Session) async throws

    func session(id: ULID) async throws -> Session?

    /// Up to `limit` sessions of `userID` with ids after `after`, ascending.
    func list(userID: UserID, after: ULID?, limit: Int, includeRevoked: Bool) async throws -> [Session]

    /// Marks the session revoked (idempotent) and returns it; `.notFound` if there is none.
    func revoke(id: ULID) async throws -> Session
}
