/// One step of a database's schema: SQL run once, in its own transaction, when a database below `version`
/// is opened. Migrations are never edited once released; a change is a new migration.
public struct SQLiteMigration: Sendable {
    public let version: Int64
    public let sql: String

    public init(version: Int64, _ sql: String) {
        self.version = version
        self.sql = sql
    }
}

extension SQLiteConnection {
    /// The highest applied migration, 0 for a new database.
    func schemaVersion() throws -> Int64 {
        try first("SELECT coalesce(max(version), 0) FROM schema_migrations") { try $0.int64(0) } ?? 0
    }

    /// Brings the schema up to the last of `migrations` (ascending versions), one transaction per migration,
    /// each recorded in `schema_migrations`. A database with a version above all of them was written by a
    /// newer build and is refused rather than misread.
    func migrate(_ migrations: [SQLiteMigration]) throws {
        precondition(
            zip(migrations, migrations.dropFirst()).allSatisfy { $0.version < $1.version } && (migrations.first?.version ?? 1) > 0,
            "migration versions must be positive and ascending"
        )
        let known = migrations.last?.version ?? 0
        try execute(
            """
            CREATE TABLE IF NOT EXISTS schema_migrations (
                version INTEGER PRIMARY KEY NOT NULL,
                applied_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
            ) STRICT
            """
        )
        let current = try schemaVersion()
        guard current <= known else {
            throw StorageError(
                .schemaTooNew,
                "the database's schema version is \(current) but this build knows versions up to \(known): "
                    + "a newer build wrote it, so open it with that build or a later one"
            )
        }
        for migration in migrations where migration.version > current {
            try transaction(.immediate) {
                // Another process may have applied it since the read above.
                guard try schemaVersion() < migration.version else { return }
                try execute(migration.sql)
                try run("INSERT INTO schema_migrations (version) VALUES (?)", [.integer(migration.version)])
            }
        }
    }
}
