import Dispatch
import EmbeddedAdapters
import Synchronization
import Testing

/// Reads share one queue, taken by as few reader threads as keep up with it.
@Suite("SQLiteDatabase reads")
struct SQLiteReadQueueTests {
    final class Served: Sendable {
        let count = Mutex(0)
    }

    static let migrations = [SQLiteMigration(version: 1, "CREATE TABLE t (n INTEGER PRIMARY KEY)")]

    /// A read that keeps its reader thread busy until `release` is signalled; returns once it is running.
    static func holdReader(_ database: SQLiteDatabase) async -> (held: Task<Int64?, any Error>, release: DispatchSemaphore) {
        let started = DispatchSemaphore(value: 0), release = DispatchSemaphore(value: 0)
        let held = Task {
            try await database.read { db in
                started.signal()
                release.wait()
                return try db.first("SELECT count(*) FROM t") { try $0.int64(0) }
            }
        }
        await SQLiteGroupCommitTests.wait(for: started)
        return (held, release)
    }

    /// Reads arriving while one is stuck are served by another thread, not queued behind it.
    @Test func aSlowReadDoesNotHoldTheOthersBack() async throws {
        try await withTemporaryDirectory { directory in
            let database = try await SQLiteDatabase.open(path: "\(directory)/reads.sqlite", migrations: Self.migrations)
            try await database.write { db in try db.run("INSERT INTO t (n) VALUES (1), (2), (3)") }
            let (held, release) = await Self.holdReader(database)
            let served = Served()
            let others = (1...50).map { _ in
                Task {
                    defer { served.count.withLock { $0 += 1 } }
                    return try await database.read { db in try db.first("SELECT sum(n) FROM t") { try $0.int64(0) } }
                }
            }
            // Bounded, so that reads stuck behind the held one fail the test instead of hanging it.
            let deadline = ContinuousClock.now + .seconds(30)
            while served.count.withLock({ $0 }) < 50, ContinuousClock.now < deadline {
                try await Task.sleep(for: .milliseconds(5))
            }
            #expect(served.count.withLock { $0 } == 50, "the other reads waited for the held one")
            release.signal()
            for read in others { #expect(try await read.value == 6) }
            #expect(try await held.value == 3)
            try await database.close()
        }
    }

    /// Reads still queued when the database closes fail with `CancellationError`; a read after the close
    /// fails as closed, and the read that was running completes.
    @Test func readsQueuedAtCloseFail() async throws {
        try await withTemporaryDirectory { directory in
            let database = try await SQLiteDatabase.open(
                path: "\(directory)/close.sqlite", migrations: Self.migrations, configuration: .defaults { $0.readers = 1 }
            )
            let (held, release) = await Self.holdReader(database)
            let queued = (1...10).map { _ in Task { try await database.read { _ in 1 } } }
            while database.waitingReads < 10 { try await Task.sleep(for: .milliseconds(5)) }
            let closing = Task { try await database.close() }
            while database.waitingReads > 0 { try await Task.sleep(for: .milliseconds(5)) }
            release.signal()
            #expect(try await held.value == 0)
            for read in queued { await #expect(throws: CancellationError.self) { try await read.value } }
            try await closing.value
            await #expect(throws: StorageError.self) { try await database.read { _ in 1 } }
        }
    }
}
