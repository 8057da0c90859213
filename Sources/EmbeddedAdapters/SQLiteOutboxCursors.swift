import GatewayApplication

/// The outbox's cursors in the gateway's SQLite file: `OutboxCursors`. One process owns the file, so the lease
/// only matters when a gateway restarts while its predecessor's lease is still running (it then waits for it
/// to expire: at most one lease period).
public final class SQLiteOutboxCursors: OutboxCursors {
    private let database: SQLiteDatabase
    private let clock: any WallClock

    public init(database: SQLiteDatabase, clock: any WallClock) {
        self.database = database
        self.clock = clock
    }

    public func acquire(destination: String, owner: String, leaseSeconds: Int64) async throws -> Int64? {
        let now = clock.now().seconds
        return try await database.write { db in
            let row = try db.first(
                "SELECT published_through, owner, lease_until FROM outbox_cursors WHERE destination = ?", [.text(destination)]
            ) { (try $0.int64(0), try $0.text(1), try $0.int64(2)) }
            if let row, row.1 != owner, row.2 >= now { return nil }
            try db.run(
                """
                INSERT INTO outbox_cursors (destination, published_through, owner, lease_until) VALUES (?, 0, ?, ?)
                ON CONFLICT (destination) DO UPDATE SET owner = excluded.owner, lease_until = excluded.lease_until
                """,
                [.text(destination), .text(owner), .integer(now + leaseSeconds)]
            )
            return row?.0 ?? 0
        }
    }

    public func advance(destination: String, owner: String, to sequence: Int64) async throws {
        try await database.write { db in
            try db.run(
                "UPDATE outbox_cursors SET published_through = max(published_through, ?) WHERE destination = ? AND owner = ?",
                [.integer(sequence), .text(destination), .text(owner)]
            )
            guard db.changes == 1 else {
                throw DomainError(.failedPrecondition, "the outbox lease of \(destination) passed to another process")
            }
        }
    }

    static let migration = SQLiteMigration(
        version: 4,
        """
        -- How far the event log was relayed to each destination (the outbox's consumers), and who relays it.
        CREATE TABLE outbox_cursors (
            destination TEXT PRIMARY KEY NOT NULL,
            published_through INTEGER NOT NULL,
            owner TEXT NOT NULL,
            lease_until INTEGER NOT NULL
        ) STRICT;
        """
    )
}
