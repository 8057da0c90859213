/// The user and session use cases. Callers act on their own user and sessions; a caller with the `admin`
/// claim may act on any, and only admins list or count all users. Only admins change `is_active`, and a
/// caller whose user is inactive is refused (`PERMISSION_DENIED`) here until an admin reactivates it.
public struct UserAccounts: Sendable {
    public struct Settings: Sendable {
        /// Session lifetime when the caller asks for none, and the most it may ask for.
        public var defaultSessionLifetimeSeconds: Int64 = 30 * 86_400
        public var maximumSessionLifetimeSeconds: Int64 = 90 * 86_400
        /// Attempts of an unconditional update (no `expected_version`) that keeps meeting concurrent writers.
        public var updateAttempts = 5

        public static var defaults: Settings { Settings() }
    }

    /// A page of results and the token for the next one (nil on the last page).
    public struct Page<Item: Sendable>: Sendable {
        public var items: [Item]
        public var nextPageToken: String?
    }

    public struct NewUser: Sendable {
        public var email: String
        public var displayName: String
        public var photoURL: String
        /// Admins may create the user of another Firebase account; nil means the caller's.
        public var firebaseUID: String?

        public init(email: String, displayName: String, photoURL: String = "", firebaseUID: String? = nil) {
            self.email = email
            self.displayName = displayName
            self.photoURL = photoURL
            self.firebaseUID = firebaseUID
        }
    }

    /// The fields to change; nil leaves a field as it is.
    public struct UserChanges: Sendable {
        public var email: String?
        public var displayName: String?
        public var photoURL: String?
        public var isActive: Bool?

        public init(email: String? = nil, displayName: String? = nil, photoURL: String? = nil, isActive: Bool? = nil) {
            self.email = email
            self.displayName = displayName
            self.photoURL = photoURL
            self.isActive = isActive
        }
    }

    private let users: any UserRepository
    private let sessions: any SessionRepository
    private let clock: any WallClock
    private let ids: any IDGenerator
    private let pageTokens: any TokenSealer
    private let domainEvents: any DomainEventEncoder
    private let settings: Settings

    public init(
        users: any UserRepository, sessions: any SessionRepository, clock: any WallClock, ids: any IDGenerator,
        pageTokens: any TokenSealer, domainEvents: any DomainEventEncoder, settings: Settings = .defaults
    ) {
        self.domainEvents = domainEvents
        self.users = users
        self.sessions = sessions
        self.clock = clock
        self.ids = ids
        self.pageTokens = pageTokens
        self.settings = settings
    }

    // MARK: Users

    public func createUser(_ new: NewUser, caller: Principal) async throws -> User {
        let firebaseUID = new.firebaseUID.flatMap { $0.isEmpty ? nil : $0 } ?? caller.uid
        guard firebaseUID == caller.uid || caller.isAdmin else {
            throw DomainError.permissionDenied("only admins may create a user for another Firebase account")
        }
        guard firebaseUID.utf8.count <= 128 else { throw DomainError.invalid("firebase_uid", "is longer than 128 bytes") }
        let now = clock.now()
        let user = User(
            id: UserID(ids.ulid()), email: try Email(new.email), displayName: try DisplayName(new.displayName),
            photoURL: try PhotoURL(new.photoURL), firebaseUID: firebaseUID, createdAt: now, updatedAt: now
        )
        try await users.create(user, recording: try record(.userCreated(user)))
        return user
    }

    public func user(id: String, caller: Principal) async throws -> User {
        let id = try UserID(parsing: id)
        guard let user = try await users.user(id: id) else { throw DomainError.notFound("user \(id)") }
        try authorize(caller, toUse: user)
        return user
    }

    public func user(email: String, caller: Principal) async throws -> User {
        let email = try Email(email)
        // Someone else's address is answered as a missing one: the answer must not tell who has an account.
        guard let user = try await users.user(email: email), caller.isAdmin || user.firebaseUID == caller.uid else {
            throw DomainError.notFound("user with email \(email)")
        }
        try authorize(caller, toUse: user)
        return user
    }

    /// The user of the caller's Firebase account.
    public func currentUser(caller: Principal) async throws -> User {
        guard let user = try await users.user(firebaseUID: caller.uid) else {
            throw DomainError.notFound("the caller's user (create it with CreateUser)")
        }
        try authorize(caller, toUse: user)
        return user
    }

    /// Applies `changes`; with `expectedVersion`, only to that version (else `.versionConflict` naming both).
    public func updateUser(id: String, changes: UserChanges, expectedVersion: Int64?, caller: Principal) async throws -> User {
        let id = try UserID(parsing: id, field: "user.id")
        // Validate before touching storage, so a bad value is reported even when the user is missing.
        let email = try changes.email.map { text throws(DomainError) in try Email(text, field: "user.email") }
        let displayName = try changes.displayName.map { text throws(DomainError) in try DisplayName(text, field: "user.display_name") }
        let photoURL = try changes.photoURL.map { text throws(DomainError) in try PhotoURL(text, field: "user.photo_url") }
        var attempt = 0
        while true {
            attempt += 1
            guard let stored = try await users.user(id: id) else { throw DomainError.notFound("user \(id)") }
            try authorize(caller, toUse: stored)
            if let expectedVersion, stored.version != expectedVersion {
                throw DomainError.versionConflict(expected: expectedVersion, actual: stored.version)
            }
            var updated = stored
            if let email { updated.email = email }
            if let displayName { updated.displayName = displayName }
            if let photoURL { updated.photoURL = photoURL }
            if let isActive = changes.isActive, isActive != stored.isActive {
                guard caller.isAdmin else { throw DomainError.permissionDenied("only admins may change is_active") }
                updated.isActive = isActive
            }
            updated.version = stored.version + 1
            updated.updatedAt = max(clock.now(), stored.updatedAt)
            let changed = UserField.allCases.filter { field in
                switch field {
                case .email: updated.email != stored.email
                case .displayName: updated.displayName != stored.displayName
                case .photoURL: updated.photoURL != stored.photoURL
                case .isActive: updated.isActive != stored.isActive
                }
            }
            do {
                try await users.update(
                    updated, expectedVersion: stored.version, recording: try record(.userUpdated(updated, changed: changed))
                )
                return updated
            } catch let error as DomainError where error.code == .versionConflict && expectedVersion == nil && attempt < settings.updateAttempts {
                continue  // a concurrent writer won; the caller did not ask for a version, so apply to the new one
            }
        }
    }

    public func deleteUser(id: String, expectedVersion: Int64?, caller: Principal) async throws {
        let id = try UserID(parsing: id)
        guard let stored = try await users.user(id: id) else { throw DomainError.notFound("user \(id)") }
        try authorize(caller, toUse: stored)
        _ = try await users.delete(id: id, expectedVersion: expectedVersion, recording: try record(.userDeleted(stored)))
    }

    /// All users, admins only.
    public func listUsers(pageSize: Int32, pageToken: String, activeOnly: Bool, caller: Principal) async throws -> Page<User> {
        try requireAdmin(caller, "list users")
        let limit = try PageSize.resolve(pageSize)
        let flags: UInt8 = activeOnly ? 1 : 0
        let after = pageToken.isEmpty
            ? nil : UserID(try PageToken.open(pageToken, listing: .users, flags: flags, with: pageTokens))
        // One more than asked says whether there is a next page without a second query.
        let found = try await users.list(after: after, limit: limit + 1, activeOnly: activeOnly)
        let page = Array(found.prefix(limit))
        let next = found.count > limit
            ? page.last.map { PageToken(listing: .users, flags: flags, after: $0.id.ulid, scope: []).sealed(with: pageTokens) }
            : nil
        return Page(items: page, nextPageToken: next)
    }

    public func countUsers(activeOnly: Bool, caller: Principal) async throws -> Int64 {
        try requireAdmin(caller, "count users")
        return try await users.count(activeOnly: activeOnly)
    }

    // MARK: Sessions

    /// A new session for the caller's user; `ttlSeconds` 0 means the default lifetime.
    public func createSession(device: String, ttlSeconds: Int64, caller: Principal) async throws -> Session {
        let device = try DeviceLabel(device)
        guard ttlSeconds >= 0, ttlSeconds <= settings.maximumSessionLifetimeSeconds else {
            throw DomainError.invalid("ttl", "must be between 0 and \(settings.maximumSessionLifetimeSeconds) seconds")
        }
        let owner = try await ownUser(caller)
        let now = clock.now()
        let session = Session(
            id: ids.ulid(), userID: owner.id, device: device, createdAt: now,
            expiresAt: now.adding(seconds: ttlSeconds == 0 ? settings.defaultSessionLifetimeSeconds : ttlSeconds)
        )
        try await sessions.create(session)
        return session
    }

    /// The caller's sessions.
    public func listSessions(pageSize: Int32, pageToken: String, includeRevoked: Bool, caller: Principal) async throws -> Page<Session> {
        let limit = try PageSize.resolve(pageSize)
        let owner = try await ownUser(caller)
        let flags: UInt8 = includeRevoked ? 1 : 0
        let scope = owner.id.ulid.bytes
        let after = pageToken.isEmpty
            ? nil : try PageToken.open(pageToken, listing: .sessions, flags: flags, scope: scope, with: pageTokens)
        let found = try await sessions.list(userID: owner.id, after: after, limit: limit + 1, includeRevoked: includeRevoked)
        let page = Array(found.prefix(limit))
        let next = found.count > limit
            ? page.last.map { PageToken(listing: .sessions, flags: flags, after: $0.id, scope: scope).sealed(with: pageTokens) }
            : nil
        return Page(items: page, nextPageToken: next)
    }

    public func revokeSession(id: String, caller: Principal) async throws -> Session {
        guard !id.isEmpty else { throw DomainError.invalid("id", "is required") }
        guard let sessionID = ULID(id) else { throw DomainError.invalid("id", "is not a ULID (26 Crockford base32 characters)") }
        guard let session = try await sessions.session(id: sessionID) else { throw DomainError.notFound("session \(sessionID)") }
        if !caller.isAdmin {
            let owner = try await ownUser(caller)
            guard session.userID == owner.id else {
                throw DomainError.permissionDenied("session \(sessionID) belongs to another user")
            }
        }
        return try await sessions.revoke(id: sessionID)
    }

    // MARK: Rules

    private func record(_ event: DomainEvent) throws -> [PendingEvent] {
        [try domainEvents.pending(event, id: ids.ulid(), at: clock.now())]
    }

    private func authorize(_ caller: Principal, toUse user: User) throws(DomainError) {
        guard !caller.isAdmin else { return }
        guard user.firebaseUID == caller.uid else { throw .permissionDenied("user \(user.id) belongs to another account") }
        guard user.isActive else { throw .permissionDenied("user \(user.id) is inactive; an admin can reactivate it") }
    }

    private func requireAdmin(_ caller: Principal, _ action: String) throws(DomainError) {
        guard caller.isAdmin else { throw .permissionDenied("only admins may \(action)") }
    }

    private func ownUser(_ caller: Principal) async throws -> User {
        guard let user = try await users.user(firebaseUID: caller.uid) else {
            throw DomainError(.failedPrecondition, "the caller has no user yet: call CreateUser first")
        }
        try authorize(caller, toUse: user)
        return user
    }
}
