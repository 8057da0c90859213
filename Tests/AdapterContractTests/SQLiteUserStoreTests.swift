import EmbeddedAdapters
import GatewayApplication
import Testing

/// What only the SQLite adapter promises: durability, migrations, and refusing what it cannot read.
@Suite("SQLiteUserStore")
struct SQLiteUserStoreTests {
    @Test func dataSurvivesCloseAndReopen() async throws {
        try await withTemporaryDirectory { directory in
            let path = "\(directory)/users.sqlite"
            var user = try Fixture.user(1, email: "Ada@Example.com")
            let session = try Fixture.session(1, of: user.id)
            let first = try await SQLiteUserStore.open(path: path)
            try await first.create(user)
            try await first.create(session)
            user.version = 2
            user.isActive = false
            try await first.update(user, expectedVersion: 1)
            _ = try await first.revoke(id: session.id)
            try await first.close()

            let second = try await SQLiteUserStore.open(path: path)
            #expect(try await second.user(id: user.id) == user)
            #expect(try await second.user(email: Email("ada@example.com")) == user)
            var revoked = session
            revoked.revoked = true
            #expect(try await second.session(id: session.id) == revoked)
            #expect(try await second.count(activeOnly: false) == 1)
            #expect(try await second.count(activeOnly: true) == 0)
            try await second.close()
        }
    }

    @Test func migrationsAreRecordedAndReopeningAppliesNothingAgain() async throws {
        try await withTemporaryDirectory { directory in
            let path = "\(directory)/users.sqlite"
            let first = try await SQLiteUserStore.open(path: path)
            let applied = try await Self.appliedMigrations(first.database)
            let version = try await first.database.schemaVersion()
            try await first.close()

            #expect(version >= 1)
            #expect(applied.map(\.version) == Array(1...version))
            #expect(applied.allSatisfy { !$0.appliedAt.isEmpty })

            let second = try await SQLiteUserStore.open(path: path)
            #expect(try await Self.appliedMigrations(second.database) == applied)
            #expect(try await second.database.schemaVersion() == version)
            try await second.close()
        }
    }

    /// And keeps the savepoints' statement journals in memory (a temporary file cost one pwrite per page per
    /// write: half the CPU of a stream of event writes).
    @Test func writerUsesWALFullSyncAndForeignKeys() async throws {
        try await withTemporaryDirectory { directory in
            let store = try await SQLiteUserStore.open(path: "\(directory)/users.sqlite")
            let settings = try await store.database.write { db in
                (
                    journal: try db.first("PRAGMA journal_mode") { try $0.text(0) },
                    synchronous: try db.first("PRAGMA synchronous") { try $0.int64(0) },
                    foreignKeys: try db.first("PRAGMA foreign_keys") { try $0.int64(0) },
                    tempStore: try db.first("PRAGMA temp_store") { try $0.int64(0) }
                )
            }
            #expect(settings.journal == "wal")
            #expect(settings.synchronous == 2, "FULL")
            #expect(settings.foreignKeys == 1)
            #expect(settings.tempStore == 2, "MEMORY")
            try await store.close()
        }
    }

    @Test func integrityCheckPasses() async throws {
        try await withTemporaryDirectory { directory in
            let store = try await SQLiteUserStore.open(path: "\(directory)/users.sqlite")
            for n in 0..<20 { try await store.create(Fixture.user(n)) }
            #expect(try await store.integrityCheck())
            try await store.close()
        }
    }

    @Test func databaseFromANewerBuildIsRefused() async throws {
        try await withTemporaryDirectory { directory in
            let path = "\(directory)/users.sqlite"
            let store = try await SQLiteUserStore.open(path: path)
            try await store.database.write { db in
                try db.run("INSERT INTO schema_migrations (version) VALUES (?)", [.integer(999)])
            }
            try await store.close()

            let error = await #expect(throws: StorageError.self) { try await SQLiteUserStore.open(path: path) }
            #expect(error?.code == .schemaTooNew)
            #expect(error?.message.contains("999") == true)
            #expect(error?.message.contains(path) == true)
        }
    }

    @Test func invalidStoredDataIsAStorageError() async throws {
        try await withTemporaryDirectory { directory in
            let store = try await SQLiteUserStore.open(path: "\(directory)/users.sqlite")
            let user = try Fixture.user(1)
            try await store.create(user)
            try await store.database.write { db in
                try db.run("UPDATE users SET email = 'not an email'")
            }

            let error = await #expect(throws: StorageError.self) { try await store.user(id: user.id) }
            #expect(error?.code == .invalidRecord)
            #expect(error?.message.contains("\(user.id)") == true)
            try await store.close()
        }
    }

    @Test func failedWriteRollsBack() async throws {
        struct Refused: Error {}
        try await withTemporaryDirectory { directory in
            let store = try await SQLiteUserStore.open(path: "\(directory)/users.sqlite")
            try await store.create(Fixture.user(1))
            await #expect(throws: Refused.self) {
                try await store.database.write { db in
                    try db.run("DELETE FROM users")
                    throw Refused()
                }
            }
            #expect(try await store.count(activeOnly: false) == 1)
            try await store.close()
        }
    }

    @Test func callsAfterCloseFail() async throws {
        try await withTemporaryDirectory { directory in
            let store = try await SQLiteUserStore.open(path: "\(directory)/users.sqlite")
            try await store.close()
            try await store.close()

            let read = await #expect(throws: StorageError.self) { try await store.count(activeOnly: false) }
            #expect(read?.code == .closed)
            let write = await #expect(throws: StorageError.self) { try await store.create(Fixture.user(1)) }
            #expect(write?.code == .closed)
        }
    }

    private struct AppliedMigration: Equatable, Sendable {
        var version: Int64
        var appliedAt: String
    }

    private static func appliedMigrations(_ database: SQLiteDatabase) async throws -> [AppliedMigration] {
        try await database.read { db in
            try db.query("SELECT version, applied_at FROM schema_migrations ORDER BY version") { row in
                AppliedMigration(version: try row.int64(0), appliedAt: try row.text(1))
            }
        }
    }
}
