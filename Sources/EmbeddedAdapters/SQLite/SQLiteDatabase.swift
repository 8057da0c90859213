import NIOCore
import NIOPosix
import Synchronization

/// A SQLite database file in WAL mode with one writer and a few readers, each connection on threads this
/// type owns so that blocking SQLite calls never run on Swift's cooperative pool.
///
/// All writes go through one connection on one thread, queued in order: SQLite allows one writer anyway, and
/// queueing here instead of in `busy_timeout` keeps waits fair. Writes queued together are committed together
/// (group commit): the writer takes every write waiting, up to `maximumBatch`, runs each in a savepoint of one
/// `BEGIN IMMEDIATE … COMMIT`, and answers each only after that COMMIT (and its fsync) succeeded. A write that
/// throws undoes only its own savepoint; a failed COMMIT fails every write in the batch. One fsync then serves
/// many concurrent writes instead of one each. Reads run on a pool of read-only connections, beside the
/// writer, each in a snapshot, taken from one queue by as few reader threads as keep up with it (see
/// `enqueueRead`). Call `close()` when done.
public final class SQLiteDatabase: @unchecked Sendable {
    // @unchecked: `writer` is only touched on `writerThread`, and each reader connection by one reader thread
    // at a time (checked out of `idleReaders`); `close` stops the reader threads before it closes anything.

    /// How the database is opened.
    public struct Configuration: Sendable {
        /// Read-only connections, and threads to run them on.
        public var readers: Int
        /// How long a statement waits for a lock held by another process before failing with `SQLITE_BUSY`.
        public var busyTimeout: Duration

        public static var defaults: Configuration { Configuration(readers: 4, busyTimeout: .seconds(5)) }

        public static func defaults(configure: (inout Configuration) -> Void) -> Configuration {
            var configuration = defaults
            configure(&configuration)
            return configuration
        }
    }

    /// The database file.
    public let path: String
    private let configuration: Configuration
    private let writerThread = NIOThreadPool(numberOfThreads: 1)
    private let readerThreads: NIOThreadPool
    private var writer: SQLiteConnection?
    private let idleReaders = Mutex<[IdleReader]>([])
    private let isClosed = Mutex(false)
    private let queue = Mutex(WriteQueue())
    private let reads = Mutex(ReadQueue())

    /// Writes waiting for the writer thread, and whether it is already on its way to take them.
    private struct WriteQueue {
        var waiting: [Write] = []
        var draining = false
        var closed = false
    }

    /// One queued write: `run` executes it in its savepoint and returns what to tell its caller once the
    /// batch's COMMIT succeeded or failed (and the write's own error, if it threw); `fail` answers a write
    /// that never ran.
    private struct Write: Sendable {
        let run: @Sendable (SQLiteConnection) -> (answer: Answer, error: (any Error)?)
        let fail: @Sendable (any Error) -> Void
    }

    private typealias Answer = @Sendable (Result<Void, any Error>) -> Void

    /// Reads waiting for a reader thread. `draining` threads are taking them, `starting` of which have been
    /// woken and not yet taken one.
    private struct ReadQueue {
        var waiting = CircularBuffer<Read>()
        var draining = 0
        var starting = 0
        var closed = false
    }

    /// One queued read: runs on a reader connection (or fails with why none could be opened).
    private typealias Read = @Sendable (Result<SQLiteConnection, any Error>) -> Void

    private let commits = Atomic<Int>(0)

    /// The most writes one transaction commits together.
    public static let maximumBatch = 256

    /// Transactions the writer has committed (fewer than writes when writes were grouped), and writes waiting
    /// for the writer now: for metrics and tests.
    public var committedTransactions: Int { commits.load(ordering: .relaxed) }
    public var waitingWrites: Int { queue.withLock { $0.waiting.count } }
    /// Reads waiting for a reader thread now (for tests).
    public var waitingReads: Int { reads.withLock { $0.waiting.count } }

    private init(path: String, configuration: Configuration) {
        self.path = path
        self.configuration = configuration
        self.readerThreads = NIOThreadPool(numberOfThreads: max(1, configuration.readers))
        writerThread.start()
        readerThreads.start()
    }

    /// Opens (creating if needed) the database at `path` and applies the `migrations` it has not had yet.
    /// Throws `StorageError` `.schemaTooNew` when a newer build has migrated it further.
    public static func open(
        path: String, migrations: [SQLiteMigration], configuration: Configuration = .defaults
    ) async throws -> SQLiteDatabase {
        let database = SQLiteDatabase(path: path, configuration: configuration)
        do {
            try await database.writerThread.runIfActive { try database.openWriter(migrations: migrations) }
        } catch {
            try? await database.close()
            if var error = error as? StorageError {
                error.message = "\(path): \(error.message)"
                throw error
            }
            throw error
        }
        return database
    }

    deinit {
        // Only if `close()` was never called: let the threads end (their connections close with this object).
        writerThread.shutdownGracefully { _ in }
        readerThreads.shutdownGracefully { _ in }
    }

    private func openWriter(migrations: [SQLiteMigration]) throws {
        let connection = try SQLiteConnection(path: path, readOnly: false, busyTimeout: configuration.busyTimeout)
        // WAL: readers keep reading their snapshot while the writer appends, so reads never wait for writes.
        let mode = try connection.first("PRAGMA journal_mode = WAL") { try $0.text(0) }
        guard mode == "wal" else {
            throw SQLiteError.misuse("\(path) cannot use write-ahead logging (journal mode is \(mode ?? "unknown"))")
        }
        // An acknowledged write must survive kill -9 and power loss. In WAL mode NORMAL survives a killed
        // process but may lose the last commits when the machine loses power; FULL syncs the log at each commit.
        try connection.execute("PRAGMA synchronous = FULL")
        // Each write runs in a savepoint (group commit, below), and a savepoint keeps the pages it changes in a
        // statement journal, a temporary file by default: one pwrite per page per write, measured as half
        // the gateway's CPU (kernel write path) under PublishStream. In memory it costs only the copies; the
        // journal lives no longer than its transaction (sqlite.org/tempfiles.html, "Statement Journals").
        try connection.execute("PRAGMA temp_store = MEMORY")
        try connection.execute("PRAGMA foreign_keys = ON")
        try connection.migrate(migrations)
        writer = connection
    }

    /// Runs `body` on the write connection, after the writes queued before it, in a transaction it may share
    /// with other writes queued at the same time; returns once that transaction is committed (durable). A
    /// throw from `body` undoes what `body` did and is rethrown; the other writes are not affected.
    ///
    /// `singleChange`: `body` changes the database with one statement at most, and throws nothing after it.
    /// SQLite undoes a failed statement by itself, so the write then runs without its own savepoint, which
    /// journals every page the write touches before changing it (a tenth of `PublishEvent`'s CPU).
    public func write<T: Sendable>(
        singleChange: Bool = false, _ body: @escaping @Sendable (SQLiteConnection) throws -> T
    ) async throws -> T {
        try checkOpen()
        return try await withCheckedThrowingContinuation { continuation in
            enqueue(Write(
                run: { connection in
                    do {
                        let value = singleChange ? try body(connection) : try connection.savepoint { try body(connection) }
                        return ({ committed in continuation.resume(with: committed.map { value }) }, nil)
                    } catch {
                        return ({ _ in continuation.resume(throwing: error) }, error)
                    }
                },
                fail: { continuation.resume(throwing: $0) }
            ))
        }
    }

    private func enqueue(_ write: Write) {
        let wakeWriter = queue.withLock { queue -> Bool? in
            guard !queue.closed else { return nil }
            queue.waiting.append(write)
            defer { queue.draining = true }
            return !queue.draining
        }
        switch wakeWriter {
        case nil: write.fail(closedError)
        case true?: writerThread.submit { _ in self.drainWrites() }
        case false?: break
        }
    }

    /// On the writer thread: commits the waiting writes, a batch per transaction, until none is left.
    private func drainWrites() {
        while true {
            let batch = queue.withLock { queue -> ArraySlice<Write> in
                let batch = queue.waiting.prefix(Self.maximumBatch)
                queue.waiting.removeFirst(batch.count)
                if batch.isEmpty { queue.draining = false }
                return batch
            }
            guard !batch.isEmpty else { return }
            guard let writer else {
                for write in batch { write.fail(closedError) }
                continue
            }
            var answers: [Answer] = []
            do {
                try writer.transaction(.immediate) {
                    for write in batch {
                        let (answer, error) = write.run(writer)
                        answers.append(answer)
                        // SQLITE_FULL, SQLITE_IOERR and a few others end the whole transaction by themselves:
                        // the writes before this one are undone too.
                        if let error, !writer.isInTransaction { throw error }
                    }
                }
            } catch {
                for answer in answers { answer(.failure(error)) }
                for write in batch.dropFirst(answers.count) { write.fail(error) }
                continue
            }
            commits.add(1, ordering: .relaxed)
            for answer in answers { answer(.success(())) }
        }
    }

    /// Runs `body` on a read-only connection in a transaction, so every query in it sees the same snapshot.
    public func read<T: Sendable>(_ body: @escaping @Sendable (SQLiteConnection) throws -> T) async throws -> T {
        try checkOpen()
        return try await withCheckedThrowingContinuation { continuation in
            enqueueRead { reader in
                continuation.resume(with: Result {
                    let reader = try reader.get()
                    return try reader.transaction(.deferred) { try body(reader) }
                })
            }
        }
    }

    /// Queues `read`, and wakes a reader thread only when none is already on its way to the queue: a thread
    /// takes reads until the queue is empty, so reads arriving together (an event loop's pass over a
    /// socket read) cost one wake-up, not one each, and another thread joins only while reads keep coming
    /// after the first has started (a slow read does not hold the others back for long). Waking a thread per
    /// read, with four readers, made `GetCurrentUser` switch threads twice per call: measured with the
    /// gateway on one CPU, 19.4k calls/s against 23.6k with a single reader.
    private func enqueueRead(_ read: @escaping Read) {
        let wake = reads.withLock { queue -> Bool? in
            guard !queue.closed else { return nil }
            queue.waiting.append(read)
            guard queue.starting == 0, queue.draining < readerCount else { return false }
            queue.draining += 1
            queue.starting += 1
            return true
        }
        switch wake {
        case nil: read(.failure(closedError))
        case true?: readerThreads.submit { state in self.drainReads(poolShuttingDown: state == .cancelled) }
        case false?: break
        }
    }

    private var readerCount: Int { max(1, configuration.readers) }

    /// On a reader thread: runs queued reads on one connection until none is left.
    private func drainReads(poolShuttingDown: Bool) {
        var reader: SQLiteConnection?
        defer { if let reader { idleReaders.withLock { $0.append(IdleReader(connection: reader)) } } }
        var first = true
        while true {
            let next = reads.withLock { queue -> Read? in
                if first { queue.starting -= 1 }
                guard let read = queue.waiting.popFirst() else {
                    queue.draining -= 1
                    return nil
                }
                return read
            }
            first = false
            guard let next else { return }
            if poolShuttingDown {
                next(.failure(CancellationError()))
                continue
            }
            do {
                let connection = try reader ?? checkOutReader()
                reader = connection
                next(.success(connection))
            } catch {
                next(.failure(error))
            }
        }
    }

    /// The highest migration applied to the database.
    public func schemaVersion() async throws -> Int64 {
        try await read { try $0.schemaVersion() }
    }

    /// Runs `PRAGMA integrity_check`: true when SQLite finds the file sound.
    public func integrityCheck() async throws -> Bool {
        try await read { try $0.integrityCheck() }
    }

    /// Lets running reads and queued writes finish (reads still queued fail with `CancellationError`), then
    /// closes every connection, checkpointing the WAL, and stops the threads. Calls made after it fail with
    /// `StorageError` `.closed`; calling it again does nothing.
    public func close() async throws {
        let wasOpen = isClosed.withLock { closed in
            defer { closed = true }
            return !closed
        }
        guard wasOpen else { return }
        // Writes already queued still run (the drain submitted for them runs before the close below).
        queue.withLock { $0.closed = true }
        let unread = reads.withLock { queue in
            queue.closed = true
            defer { queue.waiting.removeAll() }
            return Array(queue.waiting)
        }
        for read in unread { read(.failure(CancellationError())) }
        try await readerThreads.shutdownGracefully()
        // On the writer's thread, after the writes queued before, and even if this task is cancelled (hence not
        // `runIfActive`). Readers close first so that the writer, last, checkpoints the WAL into the file.
        await withCheckedContinuation { closed in
            writerThread.submit { _ in
                self.idleReaders.withLock { readers in
                    for reader in readers { reader.connection.close() }
                    readers.removeAll()
                }
                self.writer?.close()
                self.writer = nil
                closed.resume()
            }
        }
        try await writerThread.shutdownGracefully()
    }

    private func checkOpen() throws {
        if isClosed.withLock({ $0 }) { throw closedError }
    }

    private var closedError: StorageError { StorageError(.closed, "\(path) is closed") }

    /// An idle reader, or a new one: there are never more than reader threads.
    private func checkOutReader() throws -> SQLiteConnection {
        if let reader = idleReaders.withLock({ $0.popLast() }) { return reader.connection }
        return try SQLiteConnection(path: path, readOnly: true, busyTimeout: configuration.busyTimeout)
    }

    /// A reader no thread is using, so it may move to whichever thread checks it out next.
    private struct IdleReader: @unchecked Sendable {
        let connection: SQLiteConnection
    }
}
