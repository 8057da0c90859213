import GatewayApplication

/// File records in the gateway's SQLite file: `FileRepository` with the behaviour of `MemoryFileStore`,
/// durable. A delete counts the references left to its blob in its own transaction, so two deletes of the
/// last two records of one blob cannot both see the other still there.
public final class SQLiteFileStore: FileRepository {
    /// The underlying database, shared with the other stores of ``SQLiteRecords``.
    public let database: SQLiteDatabase
    /// The event log in the same database: a change's domain events are appended in its transaction.
    public let events: SQLiteEventStore
    /// Holds of uploads in this process (one process owns the database file).
    private let holds = BlobHolds()

    init(database: SQLiteDatabase, events: SQLiteEventStore) {
        self.database = database
        self.events = events
    }

    public func create(_ file: FileRecord, recording pending: [PendingEvent]) async throws {
        let values: [SQLiteValue] = [
            .blob(file.id.bytes), .text(file.key.value), .integer(file.size), .text(file.contentType), .text(file.filename),
            .text(file.ownerID), .blob(AttributeCoding.encode(file.metadata)), .integer(try Self.nanoseconds(file)),
        ]
        let last = try await database.write { db in
            do {
                try db.run(
                    """
                    INSERT INTO files (id, blob_key, size, content_type, filename, owner_id, metadata, created_at_ns)
                    VALUES (?, ?, ?, ?, ?, ?, ?, ?)
                    """,
                    values
                )
            } catch let error as SQLiteError where error.isUniqueViolation {
                throw DomainError(.alreadyExists, "file \(file.id) already exists")
            }
            return try SQLiteEventStore.append(pending, in: db).1
        }
        events.appends.appended(through: last)
    }

    public func file(id: ULID) async throws -> FileRecord? {
        try await database.read { db in
            try db.first("\(Self.selectFiles) WHERE id = ?", [.blob(id.bytes)], read: Self.file(from:))
        }
    }

    public func list(owner: String, after: ULID?, limit: Int) async throws -> [FileRecord] {
        // The empty blob sorts before every id, so one query serves the first page too.
        let bindings: [SQLiteValue] = [.text(owner), .blob(after?.bytes ?? []), .integer(Int64(max(0, limit)))]
        return try await database.read { db in
            try db.query(
                "\(Self.selectFiles) WHERE owner_id = ? AND id > ? ORDER BY id LIMIT ?", bindings, read: Self.file(from:)
            )
        }
    }

    public func delete(id: ULID, recording pending: [PendingEvent]) async throws -> (file: FileRecord, remainingReferences: Int) {
        let (stored, remaining, last) = try await database.write { db in
            let key: [SQLiteValue] = [.blob(id.bytes)]
            guard let stored = try db.first("\(Self.selectFiles) WHERE id = ?", key, read: Self.file(from:)) else {
                throw DomainError.notFound("file \(id)")
            }
            try db.run("DELETE FROM files WHERE id = ?", key)
            let remaining = try Self.references(to: stored.key, in: db)
            return (stored, remaining, try SQLiteEventStore.append(pending, in: db).1)
        }
        events.appends.appended(through: last)
        return (stored, remaining + holds.holds(on: stored.key))
    }

    public func references(to key: BlobKey) async throws -> Int {
        try await records(of: key) + holds.holds(on: key)
    }

    public func pin(_ key: BlobKey) async throws {
        await holds.pin(key)
    }

    public func unpin(_ key: BlobKey) async throws -> Int {
        holds.unpin(key) + (try await records(of: key))
    }

    public func deleteBlob(_ key: BlobKey, using delete: @Sendable () async throws -> Void) async throws -> Bool {
        try await holds.deleteBlob(key, records: { try await records(of: key) }, delete: delete)
    }

    private func records(of key: BlobKey) async throws -> Int {
        try await database.read { db in try Self.references(to: key, in: db) }
    }
}

// MARK: Rows

extension SQLiteFileStore {
    /// Read by `file(from:)`.
    private static let selectFiles = """
        SELECT id, blob_key, size, content_type, filename, owner_id, metadata, created_at_ns FROM files
        """

    private static func references(to key: BlobKey, in db: SQLiteConnection) throws -> Int {
        Int(try db.first("SELECT count(*) FROM files WHERE blob_key = ?", [.text(key.value)]) { try $0.int64(0) } ?? 0)
    }

    /// A record read back from `selectFiles`, its key parsed again as one taken from outside would be.
    private static func file(from row: SQLiteRow) throws -> FileRecord {
        let bytes = try row.blob(0)
        guard let id = ULID(bytes: bytes) else {
            throw StorageError(.invalidRecord, "an id in files is \(bytes.count) bytes, not 16")
        }
        let storedKey = try row.text(1)
        guard let key = BlobKey(parsing: storedKey) else {
            throw StorageError(.invalidRecord, "file \(id) is stored with an invalid blob key \"\(storedKey)\"")
        }
        let metadata: [String: String]
        do {
            metadata = try AttributeCoding.decode(try row.blob(6))
        } catch let error as StorageError {
            throw StorageError(.invalidRecord, "file \(id) is stored with damaged metadata: \(error.message)")
        }
        return FileRecord(
            id: id, key: key, size: try row.int64(2), contentType: try row.text(3), filename: try row.text(4),
            ownerID: try row.text(5), metadata: metadata, createdAt: UnixTime(totalNanoseconds: try row.int64(7))
        )
    }

    /// `file.createdAt` as stored; times the column cannot hold exactly (outside 1677–2262) are refused.
    private static func nanoseconds(_ file: FileRecord) throws -> Int64 {
        let stored = file.createdAt.totalNanoseconds
        guard UnixTime(totalNanoseconds: stored) == file.createdAt else {
            throw StorageError(
                .invalidRecord, "file \(file.id): created_at \(file.createdAt) cannot be stored (only 1677 to 2262)"
            )
        }
        return stored
    }
}

// MARK: Schema

extension SQLiteFileStore {
    static let migration = SQLiteMigration(
        version: 3,
        """
        -- A rowid table, not WITHOUT ROWID: metadata may reach 8 KiB, too large a row to keep in the key's b-tree.
        -- blob_key is `BlobKey.value`, which is canonical (lower-case hash), so equal keys are equal text.
        CREATE TABLE files (
            id BLOB PRIMARY KEY NOT NULL CHECK (length(id) = 16),
            blob_key TEXT NOT NULL,
            size INTEGER NOT NULL,
            content_type TEXT NOT NULL,
            filename TEXT NOT NULL,
            owner_id TEXT NOT NULL,
            metadata BLOB NOT NULL,
            created_at_ns INTEGER NOT NULL
        ) STRICT;

        -- An owner's files in id order: keyset paging walks this index.
        CREATE INDEX files_by_owner ON files (owner_id, id);
        -- How many records reference a blob, counted on every delete.
        CREATE INDEX files_by_blob_key ON files (blob_key);
        """
    )
}
