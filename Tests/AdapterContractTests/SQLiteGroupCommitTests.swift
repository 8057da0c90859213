import Dispatch
import EmbeddedAdapters
import Testing

/// Group commit: writes queued together share one transaction and one fsync, each answered after it.
@Suite("SQLiteDatabase group commit")
struct SQLiteGroupCommitTests {
    struct Refused: Error, Equatable {
        let n: Int
    }

    /// Waits for `semaphore` on a thread of its own (never block the cooperative pool).
    static func wait(for semaphore: DispatchSemaphore) async {
        await withCheckedContinuation { continuation in
            DispatchQueue.global().async {
                semaphore.wait()
                continuation.resume()
            }
        }
    }

    /// A write that keeps the writer thread busy until `release` is signalled, then runs `body`; returns once
    /// the writer is inside it.
    static func holdWriter(
        _ database: SQLiteDatabase, then body: @escaping @Sendable (SQLiteConnection) throws -> Void
    ) async -> (held: Task<Void, any Error>, release: DispatchSemaphore) {
        let started = DispatchSemaphore(value: 0), release = DispatchSemaphore(value: 0)
        let held = Task {
            try await database.write { db in
                started.signal()
                release.wait()
                try body(db)
            }
        }
        await wait(for: started)
        return (held, release)
    }

    /// Once `count` writes wait behind the held one, lets it finish and gathers each write's outcome (its
    /// number, and whether it committed), with the number of transactions they took.
    static func release(
        _ writer: (held: Task<Void, any Error>, release: DispatchSemaphore), after count: Int, of database: SQLiteDatabase,
        collecting group: inout ThrowingTaskGroup<(Int, Bool), any Error>
    ) async throws -> (outcomes: [Int: Bool], transactions: Int) {
        while database.waitingWrites < count { try await Task.sleep(for: .milliseconds(5)) }
        let before = database.committedTransactions
        writer.release.signal()
        try await writer.held.value
        var outcomes: [Int: Bool] = [:]
        for try await (n, committed) in group { outcomes[n] = committed }
        return (outcomes, database.committedTransactions - before)
    }

    static let migrations = [SQLiteMigration(version: 1, "CREATE TABLE t (n INTEGER PRIMARY KEY)")]

    /// 200 writes queued behind a held one commit in one more transaction; the ones that throw undo only
    /// their own row and get their own error; everything committed is there after a reopen.
    @Test func queuedWritesShareATransactionAndFailAlone() async throws {
        try await withTemporaryDirectory { directory in
            let path = "\(directory)/group.sqlite"
            let database = try await SQLiteDatabase.open(path: path, migrations: Self.migrations)
            // The writer thread waits until the others are queued, so the grouping does not depend on timing.
            let writer = await Self.holdWriter(database) { db in try db.run("INSERT INTO t (n) VALUES (0)") }
            try await withThrowingTaskGroup(of: (Int, Bool).self) { group in
                for n in 1...200 {
                    group.addTask {
                        do {
                            try await database.write { db in
                                try db.run("INSERT INTO t (n) VALUES (?)", [.integer(Int64(n))])
                                if n % 10 == 0 { throw Refused(n: n) }
                            }
                            return (n, true)
                        } catch let error as Refused {
                            #expect(error == Refused(n: n))
                            return (n, false)
                        }
                    }
                }
                let (outcomes, transactions) = try await Self.release(writer, after: 200, of: database, collecting: &group)
                #expect(outcomes.count == 200)
                #expect(outcomes.filter { !$0.value }.keys.sorted() == Array(stride(from: 10, through: 200, by: 10)))
                #expect(transactions == 2)
            }
            try await database.close()

            let reopened = try await SQLiteDatabase.open(path: path, migrations: Self.migrations)
            let rows = try await reopened.read { db in try db.query("SELECT n FROM t ORDER BY n") { try $0.int64(0) } }
            #expect(rows == [0] + (1...200).filter { $0 % 10 != 0 }.map(Int64.init))
            try await reopened.close()
        }
    }

    /// Writes of one change each, without savepoints: a statement that fails (here a duplicate key) is undone
    /// by SQLite alone, and the writes grouped with it commit.
    @Test func singleChangeWritesFailAlone() async throws {
        try await withTemporaryDirectory { directory in
            let path = "\(directory)/single.sqlite"
            let database = try await SQLiteDatabase.open(path: path, migrations: Self.migrations)
            let writer = await Self.holdWriter(database) { db in try db.run("INSERT INTO t (n) VALUES (0)") }
            try await withThrowingTaskGroup(of: (Int, Bool).self) { group in
                for n in 1...100 {
                    group.addTask {
                        do {
                            // Every tenth inserts 0 again, which the held write inserted.
                            try await database.write(singleChange: true) { db in
                                try db.run("INSERT INTO t (n) VALUES (?)", [.integer(n % 10 == 0 ? 0 : Int64(n))])
                            }
                            return (n, true)
                        } catch is SQLiteError {
                            return (n, false)
                        }
                    }
                }
                let (outcomes, transactions) = try await Self.release(writer, after: 100, of: database, collecting: &group)
                #expect(outcomes.filter { !$0.value }.keys.sorted() == Array(stride(from: 10, through: 100, by: 10)))
                #expect(transactions == 2)
            }
            let rows = try await database.read { db in try db.query("SELECT n FROM t ORDER BY n") { try $0.int64(0) } }
            #expect(rows == [0] + (1...100).filter { $0 % 10 != 0 }.map(Int64.init))
            try await database.close()
        }
    }

    /// Writes queued before `close` still commit; a write after it fails as closed.
    @Test func closeLetsQueuedWritesFinish() async throws {
        try await withTemporaryDirectory { directory in
            let path = "\(directory)/close.sqlite"
            let database = try await SQLiteDatabase.open(path: path, migrations: Self.migrations)
            let (held, release) = await Self.holdWriter(database) { _ in }
            let writes = (1...50).map { n in
                Task { try await database.write { db in try db.run("INSERT INTO t (n) VALUES (?)", [.integer(Int64(n))]) } }
            }
            while database.waitingWrites < 50 { try await Task.sleep(for: .milliseconds(5)) }
            let closing = Task { try await database.close() }
            release.signal()
            try await held.value
            for write in writes { try await write.value }
            try await closing.value
            await #expect(throws: StorageError.self) { try await database.write { _ in } }

            let reopened = try await SQLiteDatabase.open(path: path, migrations: Self.migrations)
            #expect(try await reopened.read { db in try db.first("SELECT count(*) FROM t") { try $0.int64(0) } } == 50)
            try await reopened.close()
        }
    }
}
