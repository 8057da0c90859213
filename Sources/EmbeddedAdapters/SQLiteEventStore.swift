import GatewayApplication

/// The event log in the gateway's SQLite file: `EventStore`, durable before acknowledged. Sequence numbers are
/// the table's rowids: one writer commits them in order, so a reader that sees sequence N sees everything up
/// to N. User changes append their domain events in their own write transaction (the outbox).
public final class SQLiteEventStore: EventStore {
    public let database: SQLiteDatabase
    public let appends = AppendSignal()

    public init(database: SQLiteDatabase) {
        self.database = database
    }

    public func append(_ events: [PendingEvent]) async throws -> [AppendedEvent] {
        // One event is one INSERT (after a read for its idempotency key), and nothing can fail after it.
        let (appended, last) = try await database.write(singleChange: events.count == 1) { db in try Self.append(events, in: db) }
        appends.appended(through: last)
        return appended
    }

    /// Appends inside the caller's write transaction; returns the results and the last sequence number
    /// stored. The caller signals `appends` once the transaction has committed.
    static func append(_ events: [PendingEvent], in db: SQLiteConnection) throws -> ([AppendedEvent], Int64) {
        var results: [AppendedEvent] = []
        var last: Int64 = 0
        for pending in events {
            if let key = pending.event.idempotencyKey,
                let earlier = try db.first(
                    "\(selectEvents) WHERE publisher = ? AND idempotency_key = ?", [.text(pending.publisher), .text(key)],
                    read: event(from:)
                )
            {
                results.append(AppendedEvent(event: earlier, duplicate: true))
                continue
            }
            let event = pending.event
            // The sequence is the rowid. Not `RETURNING sequence`: SQLite collects RETURNING rows in an
            // ephemeral table, a b-tree opened and freed per statement (perf: its page allocations were a
            // visible part of PublishEvent's writer thread).
            try db.run(
                """
                INSERT INTO events (id, type, aggregate_id, payload, content_type, attributes, idempotency_key, publisher,
                    recorded_at_ns)
                VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
                """,
                [
                    .blob(pending.id.bytes), .text(event.type), .text(event.aggregateID), .blob(event.payload),
                    .text(event.contentType), .blob(AttributeCoding.encode(event.attributes)),
                    event.idempotencyKey.map { .text($0) } ?? .null, .text(pending.publisher),
                    .integer(pending.recordedAt.totalNanoseconds),
                ]
            )
            last = db.lastInsertRowID
            results.append(AppendedEvent(
                event: RecordedEvent(id: pending.id, sequence: last, event: event, publisher: pending.publisher, recordedAt: pending.recordedAt),
                duplicate: false
            ))
        }
        return (results, last)
    }

    public func read(after: Int64, limit: Int, filter: EventFilter) async throws -> EventBatch {
        var conditions = ["sequence > ?"]
        var bindings: [SQLiteValue] = [.integer(after)]
        if !filter.types.isEmpty {
            conditions.append("type IN (\(Array(repeating: "?", count: filter.types.count).joined(separator: ", ")))")
            bindings += filter.types.sorted().map { .text($0) }
        }
        if !filter.aggregateIDs.isEmpty {
            conditions.append("aggregate_id IN (\(Array(repeating: "?", count: filter.aggregateIDs.count).joined(separator: ", ")))")
            bindings += filter.aggregateIDs.sorted().map { .text($0) }
        }
        if let publisher = filter.publisher {
            conditions.append("publisher = ?")
            bindings.append(.text(publisher))
        }
        let sql = "\(Self.selectEvents) WHERE \(conditions.joined(separator: " AND ")) ORDER BY sequence LIMIT ?"
        bindings.append(.integer(Int64(max(0, limit))))
        return try await database.read { [bindings] db in
            let events = try db.query(sql, bindings, read: Self.event(from:))
            // A full page was scanned up to its last event; a short one up to the end of the log (same snapshot).
            let scanned = events.count == limit && limit > 0
                ? events[events.count - 1].sequence
                : try db.first("SELECT coalesce(max(sequence), 0) FROM events", read: { try $0.int64(0) }) ?? 0
            return EventBatch(events: events, scannedThrough: max(after, scanned))
        }
    }

    public func lastSequence() async throws -> Int64 {
        try await database.read { db in
            try db.first("SELECT coalesce(max(sequence), 0) FROM events", read: { try $0.int64(0) }) ?? 0
        }
    }

    private static let selectEvents = """
        SELECT sequence, id, type, aggregate_id, payload, content_type, attributes, idempotency_key, publisher,
            recorded_at_ns
        FROM events
        """

    private static func event(from row: SQLiteRow) throws -> RecordedEvent {
        guard let id = ULID(bytes: try row.blob(1)) else { throw StorageError(.invalidRecord, "an event id is not 16 bytes") }
        let event: NewEvent
        do {
            event = try NewEvent(
                type: try row.text(2), aggregateID: try row.text(3), payload: try row.blob(4), contentType: try row.text(5),
                attributes: try AttributeCoding.decode(try row.blob(6)),
                idempotencyKey: row.isNull(7) ? nil : try row.text(7), reservedTypeAllowed: true
            )
        } catch let error as DomainError {
            throw StorageError(.invalidRecord, "event \(id) fails validation: \(error.message)")
        }
        return RecordedEvent(
            id: id, sequence: try row.int64(0), event: event, publisher: try row.text(8),
            recordedAt: UnixTime(totalNanoseconds: try row.int64(9))
        )
    }

    static let migration = SQLiteMigration(
        version: 2,
        """
        -- AUTOINCREMENT: a sequence number is never reused, even if the newest events were ever removed.
        CREATE TABLE events (
            sequence INTEGER PRIMARY KEY AUTOINCREMENT,
            id BLOB NOT NULL UNIQUE CHECK (length(id) = 16),
            type TEXT NOT NULL,
            aggregate_id TEXT NOT NULL,
            payload BLOB NOT NULL,
            content_type TEXT NOT NULL,
            attributes BLOB NOT NULL,
            idempotency_key TEXT,
            publisher TEXT NOT NULL,
            recorded_at_ns INTEGER NOT NULL
        ) STRICT;

        -- Idempotency keys are per publisher.
        CREATE UNIQUE INDEX events_idempotency ON events (publisher, idempotency_key) WHERE idempotency_key IS NOT NULL;
        CREATE INDEX events_by_aggregate ON events (aggregate_id, sequence);
        CREATE INDEX events_by_type ON events (type, sequence);
        CREATE INDEX events_by_publisher ON events (publisher, sequence);
        """
    )
}

/// A string map (event attributes, file metadata) as one blob: for each entry in key order, key and value each as a 4-byte big-endian
/// length and UTF-8 bytes. Decoding checks every length, so a damaged record is an error, not a crash.
enum AttributeCoding {
    static func encode(_ attributes: [String: String]) -> [UInt8] {
        var out: [UInt8] = []
        for (key, value) in attributes.sorted(by: { $0.key < $1.key }) {
            for text in [key, value] {
                let bytes = Array(text.utf8)
                withUnsafeBytes(of: UInt32(bytes.count).bigEndian) { out += $0 }
                out += bytes
            }
        }
        return out
    }

    static func decode(_ bytes: [UInt8]) throws -> [String: String] {
        var attributes: [String: String] = [:]
        var index = 0
        func text() throws -> String {
            guard bytes.count - index >= 4 else { throw StorageError(.invalidRecord, "a stored string map is truncated") }
            let length = bytes[index..<index + 4].reduce(0) { $0 << 8 | Int($1) }
            index += 4
            guard bytes.count - index >= length else { throw StorageError(.invalidRecord, "a stored string map is truncated") }
            defer { index += length }
            return String(decoding: bytes[index..<index + length], as: UTF8.self)
        }
        while index < bytes.count {
            let key = try text()
            attributes[key] = try text()
        }
        return attributes
    }
}
