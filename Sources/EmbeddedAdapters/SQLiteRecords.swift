/// The gateway's records in one SQLite file: users, sessions, file records and the event log share one
/// database, so that a change and the domain events it causes commit in one transaction.
public struct SQLiteRecords: Sendable {
    public let database: SQLiteDatabase
    public let users: SQLiteUserStore
    public let files: SQLiteFileStore
    public let events: SQLiteEventStore

    /// Every schema change, in order. Append only: a released migration is never edited.
    static let migrations = SQLiteUserStore.migrations + [SQLiteEventStore.migration, SQLiteFileStore.migration, SQLiteOutboxCursors.migration]

    /// Opens (creating if needed) the database at `path` and brings its schema up to date.
    public static func open(path: String, configuration: SQLiteDatabase.Configuration = .defaults) async throws -> SQLiteRecords {
        let database = try await SQLiteDatabase.open(path: path, migrations: migrations, configuration: configuration)
        let events = SQLiteEventStore(database: database)
        return SQLiteRecords(
            database: database,
            users: SQLiteUserStore(database: database, events: events),
            files: SQLiteFileStore(database: database, events: events),
            events: events
        )
    }

    /// Waits for calls under way and closes the database.
    public func close() async throws {
        try await database.close()
    }
}
