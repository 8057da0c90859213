import GatewayApplication
import Synchronization

/// Users and sessions in process memory, behind one lock: the reference behaviour of `UserRepository` and
/// `SessionRepository`, for unit tests. Domain events go to `events` inside the same critical section.
public final class MemoryUserStore: UserRepository, SessionRepository {
    public let events: MemoryEventStore

    private struct State {
        var users: [UserID: User] = [:]
        /// By the canonical email's UTF-8 bytes: compared as SQLite compares them, not by Unicode equivalence.
        var idByEmail: [[UInt8]: UserID] = [:]
        var idByFirebaseUID: [String: UserID] = [:]
        var sessions: [ULID: Session] = [:]
    }

    private let state = Mutex(State())

    public init(events: MemoryEventStore = MemoryEventStore()) {
        self.events = events
    }

    private func change<T: Sendable>(recording pending: [PendingEvent], _ change: (inout State) throws -> T) throws -> T {
        try events.commit(pending, in: state, change)
    }

    // MARK: UserRepository

    public func create(_ user: User, recording pending: [PendingEvent]) async throws {
        try change(recording: pending) { state in
            guard state.users[user.id] == nil else { throw DomainError(.alreadyExists, "user \(user.id) already exists") }
            try Self.checkUnique(user, in: state)
            state.users[user.id] = user
            state.idByEmail[Array(user.email.canonical.utf8)] = user.id
            state.idByFirebaseUID[user.firebaseUID] = user.id
        }
    }

    public func user(id: UserID) async throws -> User? {
        state.withLock { $0.users[id] }
    }

    public func user(email: Email) async throws -> User? {
        state.withLock { state in state.idByEmail[Array(email.canonical.utf8)].flatMap { state.users[$0] } }
    }

    public func user(firebaseUID: String) async throws -> User? {
        state.withLock { state in state.idByFirebaseUID[firebaseUID].flatMap { state.users[$0] } }
    }

    public func update(_ user: User, expectedVersion: Int64, recording pending: [PendingEvent]) async throws {
        try change(recording: pending) { state in
            guard let stored = state.users[user.id] else { throw DomainError.notFound("user \(user.id)") }
            guard stored.version == expectedVersion else {
                throw DomainError.versionConflict(expected: expectedVersion, actual: stored.version)
            }
            try Self.checkUnique(user, in: state)
            state.idByEmail[Array(stored.email.canonical.utf8)] = nil
            state.idByFirebaseUID[stored.firebaseUID] = nil
            state.users[user.id] = user
            state.idByEmail[Array(user.email.canonical.utf8)] = user.id
            state.idByFirebaseUID[user.firebaseUID] = user.id
        }
    }

    public func delete(id: UserID, expectedVersion: Int64?, recording pending: [PendingEvent]) async throws -> User {
        try change(recording: pending) { state in
            guard let stored = state.users[id] else { throw DomainError.notFound("user \(id)") }
            if let expectedVersion, stored.version != expectedVersion {
                throw DomainError.versionConflict(expected: expectedVersion, actual: stored.version)
            }
            state.users[id] = nil
            state.idByEmail[Array(stored.email.canonical.utf8)] = nil
            state.idByFirebaseUID[stored.firebaseUID] = nil
            state.sessions = state.sessions.filter { $0.value.userID != id }
            return stored
        }
    }

    public func list(after: UserID?, limit: Int, activeOnly: Bool) async throws -> [User] {
        state.withLock { state in
            Array(
                state.users.values
                    .filter { user in (after.map { user.id > $0 } ?? true) && (!activeOnly || user.isActive) }
                    .sorted { $0.id < $1.id }
                    .prefix(max(0, limit))
            )
        }
    }

    public func count(activeOnly: Bool) async throws -> Int64 {
        state.withLock { state in Int64(state.users.values.count { !activeOnly || $0.isActive }) }
    }

    private static func checkUnique(_ user: User, in state: State) throws {
        if let owner = state.idByEmail[Array(user.email.canonical.utf8)], owner != user.id {
            throw DomainError(.alreadyExists, "a user with email \(user.email) already exists")
        }
        if let owner = state.idByFirebaseUID[user.firebaseUID], owner != user.id {
            throw DomainError(.alreadyExists, "Firebase user \(user.firebaseUID) already has a user")
        }
    }

    // MARK: SessionRepository

    public func create(_ session: Session) async throws {
        try state.withLock { state in
            guard state.users[session.userID] != nil else { throw DomainError.notFound("user \(session.userID)") }
            guard state.sessions[session.id] == nil else {
                throw DomainError(.alreadyExists, "session \(session.id) already exists")
            }
            state.sessions[session.id] = session
        }
    }

    public func session(id: ULID) async throws -> Session? {
        state.withLock { $0.sessions[id] }
    }

    public func list(userID: UserID, after: ULID?, limit: Int, includeRevoked: Bool) async throws -> [Session] {
        state.withLock { state in
            Array(
                state.sessions.values
                    .filter { s in s.userID == userID && (after.map { s.id > $0 } ?? true) && (includeRevoked || !s.revoked) }
                    .sorted { $0.id < $1.id }
                    .prefix(max(0, limit))
            )
        }
    }

    public func revoke(id: ULID) async throws -> Session {
        try state.withLock { state in
            guard var session = state.sessions[id] else { throw DomainError.notFound("session \(id)") }
            session.revoked = true
            state.sessions[id] = session
            return session
        }
    }
}
