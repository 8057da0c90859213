import GatewayApplication

/// Users and sessions in a SQLite file: `UserRepository` and `SessionRepository` with the behaviour of
/// `MemoryUserStore`, durable. Uniqueness and foreign keys are the schema's constraints; version checks run
/// inside the write transaction, so concurrent updates cannot both win.
public final class SQLiteUserStore: UserRepository, SessionRepository {
    /// The underlying database, for maintenance (integrity checks, schema version, inspection).
    public let database: SQLiteDatabase
    /// The event log in the same database: a change's domain events are appended in its transaction.
    public let events: SQLiteEventStore

    init(database: SQLiteDatabase, events: SQLiteEventStore) {
        self.database = database
        self.events = events
    }

    /// Opens (creating if needed) the gateway's records in the file at `path` (see ``SQLiteRecords``) and
    /// returns their user store.
    public static func open(
        path: String, configuration: SQLiteDatabase.Configuration = .defaults
    ) async throws -> SQLiteUserStore {
        try await SQLiteRecords.open(path: path, configuration: configuration).users
    }

    /// Waits for calls under way and closes the database; see `SQLiteDatabase.close()`.
    public func close() async throws {
        try await database.close()
    }

    /// True when SQLite finds the file sound (`PRAGMA integrity_check`).
    public func integrityCheck() async throws -> Bool {
        try await database.integrityCheck()
    }

    // MARK: UserRepository

    public func create(_ user: User, recording pending: [PendingEvent]) async throws {
        let values = try Self.values(of: user)
        let last = try await database.write { db in
            do {
                try db.run(
                    """
                    INSERT INTO users (id, email, email_canonical, display_name, photo_url, firebase_uid, is_active, version,
                        created_at_ns, updated_at_ns)
                    VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
                    """,
                    [.blob(user.id.ulid.bytes)] + values
                )
            } catch let error as SQLiteError where error.isUniqueViolation {
                if try Self.storedVersion(of: user.id, in: db) != nil {
                    throw DomainError(.alreadyExists, "user \(user.id) already exists")
                }
                throw try Self.uniquenessConflict(of: user, in: db) ?? error
            }
            return try SQLiteEventStore.append(pending, in: db).1
        }
        events.appends.appended(through: last)
    }

    public func user(id: UserID) async throws -> User? {
        try await database.read { db in
            try db.first("\(Self.selectUsers) WHERE id = ?", [.blob(id.ulid.bytes)], read: Self.user(from:))
        }
    }

    public func user(email: Email) async throws -> User? {
        try await database.read { db in
            try db.first(
                "\(Self.selectUsers) WHERE email_canonical = ?", [.text(email.canonical)], read: Self.user(from:)
            )
        }
    }

    public func user(firebaseUID: String) async throws -> User? {
        try await database.read { db in
            try db.first("\(Self.selectUsers) WHERE firebase_uid = ?", [.text(firebaseUID)], read: Self.user(from:))
        }
    }

    public func update(_ user: User, expectedVersion: Int64, recording pending: [PendingEvent]) async throws {
        let values = try Self.values(of: user)
        let last = try await database.write { db in
            guard let stored = try Self.storedVersion(of: user.id, in: db) else {
                throw DomainError.notFound("user \(user.id)")
            }
            guard stored == expectedVersion else {
                throw DomainError.versionConflict(expected: expectedVersion, actual: stored)
            }
            do {
                try db.run(
                    """
                    UPDATE users SET email = ?, email_canonical = ?, display_name = ?, photo_url = ?, firebase_uid = ?,
                        is_active = ?, version = ?, created_at_ns = ?, updated_at_ns = ?
                    WHERE id = ?
                    """,
                    values + [.blob(user.id.ulid.bytes)]
                )
            } catch let error as SQLiteError where error.isUniqueViolation {
                throw try Self.uniquenessConflict(of: user, in: db) ?? error
            }
            return try SQLiteEventStore.append(pending, in: db).1
        }
        events.appends.appended(through: last)
    }

    public func delete(id: UserID, expectedVersion: Int64?, recording pending: [PendingEvent]) async throws -> User {
        let (stored, last) = try await database.write { db in
            let key: [SQLiteValue] = [.blob(id.ulid.bytes)]
            guard let stored = try db.first("\(Self.selectUsers) WHERE id = ?", key, read: Self.user(from:)) else {
                throw DomainError.notFound("user \(id)")
            }
            if let expectedVersion, stored.version != expectedVersion {
                throw DomainError.versionConflict(expected: expectedVersion, actual: stored.version)
            }
            try db.run("DELETE FROM users WHERE id = ?", key)  // sessions go with it: ON DELETE CASCADE
            return (stored, try SQLiteEventStore.append(pending, in: db).1)
        }
        events.appends.appended(through: last)
        return stored
    }

    public func list(after: UserID?, limit: Int, activeOnly: Bool) async throws -> [User] {
        // The empty blob sorts before every id, so one query serves the first page too.
        let bindings: [SQLiteValue] = [.blob(after?.ulid.bytes ?? []), .integer(Int64(max(0, limit)))]
        return try await database.read { db in
            try db.query(
                activeOnly
                    ? "\(Self.selectUsers) WHERE id > ? AND is_active = 1 ORDER BY id LIMIT ?"
                    : "\(Self.selectUsers) WHERE id > ? ORDER BY id LIMIT ?",
                bindings,
                read: Self.user(from:)
            )
        }
    }

    public func count(activeOnly: Bool) async throws -> Int64 {
        try await database.read { db in
            try db.first(
                activeOnly ? "SELECT count(*) FROM users WHERE is_active = 1" : "SELECT count(*) FROM users",
                read: { try $0.int64(0) }
            ) ?? 0
        }
    }

    // MARK: SessionRepository

    public func create(_ session: Session) async throws {
        let values: [SQLiteValue] = [
            .blob(session.id.bytes), .blob(session.userID.ulid.bytes), .text(session.device.value),
            .integer(try Self.nanoseconds(session.createdAt, "session \(session.id)", "created_at")),
            .integer(try Self.nanoseconds(session.expiresAt, "session \(session.id)", "expires_at")),
            .bool(session.revoked),
        ]
        try await database.write { db in
            do {
                try db.run(
                    "INSERT INTO sessions (id, user_id, device, created_at_ns, expires_at_ns, revoked) VALUES (?, ?, ?, ?, ?, ?)",
                    values
                )
            } catch let error as SQLiteError where error.isConstraintViolation {
                // The same order as the memory store: a missing user first, then a taken session id.
                if try Self.storedVersion(of: session.userID, in: db) == nil {
                    throw DomainError.notFound("user \(session.userID)")
                }
                if error.isUniqueViolation {
                    throw DomainError(.alreadyExists, "session \(session.id) already exists")
                }
                throw error
            }
        }
    }

    public func session(id: ULID) async throws -> Session? {
        try await database.read { db in
            try db.first("\(Self.selectSessions) WHERE id = ?", [.blob(id.bytes)], read: Self.session(from:))
        }
    }

    public func list(userID: UserID, after: ULID?, limit: Int, includeRevoked: Bool) async throws -> [Session] {
        let bindings: [SQLiteValue] = [
            .blob(userID.ulid.bytes), .blob(after?.bytes ?? []), .integer(Int64(max(0, limit))),
        ]
        return try await database.read { db in
            try db.query(
                includeRevoked
                    ? "\(Self.selectSessions) WHERE user_id = ? AND id > ? ORDER BY id LIMIT ?"
                    : "\(Self.selectSessions) WHERE user_id = ? AND id > ? AND revoked = 0 ORDER BY id LIMIT ?",
                bindings,
                read: Self.session(from:)
            )
        }
    }

    public func revoke(id: ULID) async throws -> Session {
        try await database.write { db in
            let key: [SQLiteValue] = [.blob(id.bytes)]
            let select = "\(Self.selectSessions) WHERE id = ?"
            guard var session = try db.first(select, key, read: Self.session(from:)) else {
                throw DomainError.notFound("session \(id)")
            }
            if !session.revoked {
                try db.run("UPDATE sessions SET revoked = 1 WHERE id = ?", key)
                session.revoked = true
            }
            return session
        }
    }
}

// MARK: Rows

extension SQLiteUserStore {
    /// Read by `user(from:)`.
    private static let selectUsers = """
        SELECT id, email, display_name, photo_url, firebase_uid, is_active, version, created_at_ns, updated_at_ns FROM users
        """
    /// Read by `session(from:)`.
    private static let selectSessions = "SELECT id, user_id, device, created_at_ns, expires_at_ns, revoked FROM sessions"

    /// The values of every column but `id`, in the order of `create` and `update`.
    private static func values(of user: User) throws -> [SQLiteValue] {
        let record = "user \(user.id)"
        return [
            .text(user.email.value), .text(user.email.canonical), .text(user.displayName.value), .text(user.photoURL.value),
            .text(user.firebaseUID), .bool(user.isActive), .integer(user.version),
            .integer(try nanoseconds(user.createdAt, record, "created_at")),
            .integer(try nanoseconds(user.updatedAt, record, "updated_at")),
        ]
    }

    /// A user read back from `userColumns`, its values validated again as the domain would on input.
    private static func user(from row: SQLiteRow) throws -> User {
        let id = UserID(try ulid(row.blob(0), "users"))
        return try validated("user \(id)") {
            User(
                id: id, email: try Email(row.text(1)), displayName: try DisplayName(row.text(2)),
                photoURL: try PhotoURL(row.text(3)), firebaseUID: try row.text(4), isActive: try row.bool(5),
                version: try row.int64(6), createdAt: UnixTime(totalNanoseconds: try row.int64(7)),
                updatedAt: UnixTime(totalNanoseconds: try row.int64(8))
            )
        }
    }

    private static func session(from row: SQLiteRow) throws -> Session {
        let id = try ulid(row.blob(0), "sessions")
        return try validated("session \(id)") {
            Session(
                id: id, userID: UserID(try ulid(row.blob(1), "sessions")), device: try DeviceLabel(row.text(2)),
                createdAt: UnixTime(totalNanoseconds: try row.int64(3)),
                expiresAt: UnixTime(totalNanoseconds: try row.int64(4)), revoked: try row.bool(5)
            )
        }
    }

    /// Runs `make`, turning a validation failure into a storage error: the data is bad, not the request.
    private static func validated<T>(_ record: @autoclosure () -> String, _ make: () throws -> T) throws -> T {
        do {
            return try make()
        } catch let error as DomainError {
            throw StorageError(.invalidRecord, "\(record()) is stored with an invalid value: \(error.message)")
        }
    }

    private static func ulid(_ bytes: [UInt8], _ table: String) throws -> ULID {
        guard let ulid = ULID(bytes: bytes) else {
            throw StorageError(.invalidRecord, "an id in \(table) is \(bytes.count) bytes, not 16")
        }
        return ulid
    }

    /// `time` as stored; times the column cannot hold exactly (outside 1677–2262) are refused.
    private static func nanoseconds(_ time: UnixTime, _ record: String, _ field: String) throws -> Int64 {
        let stored = time.totalNanoseconds
        guard UnixTime(totalNanoseconds: stored) == time else {
            throw StorageError(.invalidRecord, "\(record): \(field) \(time) cannot be stored (only 1677 to 2262)")
        }
        return stored
    }

    private static func storedVersion(of id: UserID, in db: SQLiteConnection) throws -> Int64? {
        try db.first("SELECT version FROM users WHERE id = ?", [.blob(id.ulid.bytes)]) { try $0.int64(0) }
    }

    /// Which unique value of `user` another user holds, checked in the memory store's order and with its
    /// messages; nil if none does.
    private static func uniquenessConflict(of user: User, in db: SQLiteConnection) throws -> DomainError? {
        func taken(_ column: String, _ value: String) throws -> Bool {
            let bindings: [SQLiteValue] = [.text(value), .blob(user.id.ulid.bytes)]
            return try db.first("SELECT 1 FROM users WHERE \(column) = ? AND id != ?", bindings) { _ in true } ?? false
        }
        if try taken("email_canonical", user.email.canonical) {
            return DomainError(.alreadyExists, "a user with email \(user.email) already exists")
        }
        if try taken("firebase_uid", user.firebaseUID) {
            return DomainError(.alreadyExists, "Firebase user \(user.firebaseUID) already has a user")
        }
        return nil
    }
}

// MARK: Schema

extension SQLiteUserStore {
    /// The schema, one migration per released change. Ids are `ULID.bytes`, which sort like the ULIDs, so
    /// `ORDER BY id` is creation order and keyset paging walks the primary key.
    static let migrations: [SQLiteMigration] = [
        SQLiteMigration(
            version: 1,
            """
            -- STRICT: a value of the wrong type is refused on write instead of converted.
            -- WITHOUT ROWID: rows are small and always found by id, so the table is kept in id order.
            CREATE TABLE users (
                id BLOB PRIMARY KEY NOT NULL CHECK (length(id) = 16),
                email TEXT NOT NULL,
                email_canonical TEXT NOT NULL UNIQUE,
                display_name TEXT NOT NULL,
                photo_url TEXT NOT NULL,
                firebase_uid TEXT NOT NULL UNIQUE,
                is_active INTEGER NOT NULL CHECK (is_active IN (0, 1)),
                version INTEGER NOT NULL,
                created_at_ns INTEGER NOT NULL,
                updated_at_ns INTEGER NOT NULL
            ) STRICT, WITHOUT ROWID;

            -- Only active users, in id order: list and count with active_only read this alone.
            CREATE INDEX users_active ON users (id) WHERE is_active = 1;

            CREATE TABLE sessions (
                id BLOB PRIMARY KEY NOT NULL CHECK (length(id) = 16),
                user_id BLOB NOT NULL REFERENCES users (id) ON DELETE CASCADE,
                device TEXT NOT NULL,
                created_at_ns INTEGER NOT NULL,
                expires_at_ns INTEGER NOT NULL,
                revoked INTEGER NOT NULL CHECK (revoked IN (0, 1))
            ) STRICT, WITHOUT ROWID;

            -- A user's sessions in id order; also what ON DELETE CASCADE looks them up by.
            CREATE INDEX sessions_by_user ON sessions (user_id, id);
            """
        )
    ]
}
