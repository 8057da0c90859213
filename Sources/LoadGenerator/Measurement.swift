import Histogram
import RPCCore
import RPCHTTP2
import Synchronization

/// Latencies in nanoseconds, 3 significant digits (HdrHistogram), up to an hour.
public struct Latencies: Sendable {
    var histogram = Histogram<UInt64>(lowestDiscernibleValue: 1, highestTrackableValue: 3_600_000_000_000, numberOfSignificantValueDigits: .three)

    public init() {}

    public mutating func record(nanoseconds: UInt64) {
        _ = histogram.record(Swift.min(Swift.max(nanoseconds, 1), histogram.highestTrackableValue))
    }

    public mutating func add(_ other: Latencies) {
        histogram.add(other.histogram)
    }

    public var count: UInt64 { histogram.totalCount }

    /// The value at a percentile (0...100), in nanoseconds; 0 when nothing was recorded.
    public func percentile(_ percentile: Double) -> UInt64 {
        count == 0 ? 0 : histogram.valueAtPercentile(percentile)
    }

    public var max: UInt64 { count == 0 ? 0 : histogram.max }
}

/// Latencies recorded by many workers: a few shards behind locks, so that a thousand workers neither contend
/// on one lock nor hold a thousand histograms (about 256 KiB each).
final class ShardedLatencies: Sendable {
    private let shards: [Locked<Latencies>]

    init(shards: Int = 16) {
        self.shards = (0..<shards).map { _ in Locked(Latencies()) }
    }

    func record(nanoseconds: UInt64, worker: Int) {
        shards[worker % shards.count].withLock { $0.record(nanoseconds: nanoseconds) }
    }

    func merged() -> Latencies {
        var all = Latencies()
        for shard in shards { shard.withLock { all.add($0) } }
        return all
    }
}

/// The run's clock: warm-up, then the measured window. Operations count when they complete inside the window;
/// their latency counts when they were meant to start inside it (so a stall near the end still shows).
struct Window: Sendable {
    let start: UInt64
    let measureFrom: UInt64
    let end: UInt64

    init(shape: LoadShape, start: UInt64 = monotonicNanos()) {
        self.start = start
        measureFrom = start + shape.warmup.nanoseconds
        end = measureFrom + shape.duration.nanoseconds
    }

    var seconds: Double { Double(end - measureFrom) / 1e9 }
}

/// What one worker counted; merged over workers at the end.
struct Counts: Sendable {
    var operations = 0
    var messagesSent = 0
    var messagesReceived = 0
    var bytesSent = 0
    var bytesReceived = 0
    var errors: [String: Int] = [:]

    mutating func add(_ other: Counts) {
        operations += other.operations
        messagesSent += other.messagesSent
        messagesReceived += other.messagesReceived
        bytesSent += other.bytesSent
        bytesReceived += other.bytesReceived
        errors.merge(other.errors, uniquingKeysWith: +)
    }
}

/// What a worker uses to pace itself and to record what it did.
public final class Worker: @unchecked Sendable {
    // Used by the worker's own task only, apart from `latencies` (shared, locked).
    let index: Int
    let transport: any ClientTransport
    /// Where the worker's tasks run: its connection's event loop.
    let executor: EventLoopExecutor?
    let metadata: Metadata
    let shape: LoadShape
    let window: Window
    let latencies: ShardedLatencies
    /// Closes this worker's connection (shared with the other workers on it).
    let closeConnection: @Sendable () async -> Void
    var counts = Counts()
    /// When operations are meant to start.
    var schedule: Schedule

    init(
        index: Int, transport: any ClientTransport, executor: EventLoopExecutor? = nil, metadata: Metadata, shape: LoadShape,
        window: Window, latencies: ShardedLatencies, closeConnection: @escaping @Sendable () async -> Void = {}
    ) {
        self.executor = executor
        self.closeConnection = closeConnection
        self.index = index
        self.transport = transport
        self.metadata = metadata
        self.shape = shape
        self.window = window
        self.latencies = latencies
        schedule = Schedule(index: index, shape: shape, window: window)
    }

    /// For one operation's call.
    var options: CallOptions { CallOptions(timeout: shape.timeout) }
    /// For a stream that lasts the whole run.
    var streamOptions: CallOptions { CallOptions(timeout: shape.timeout.map { shape.warmup + shape.duration + $0 }) }

    /// The intended start of the next operation, after waiting for it in open loop; nil once the run is over.
    func nextStart() async -> UInt64? {
        await schedule.next()
    }

    var isOver: Bool { monotonicNanos() >= window.end || Task.isCancelled }

    /// One operation done: its latency from the intended start, and whether it completed in the window.
    func completed(intended: UInt64, at done: UInt64 = monotonicNanos()) {
        if intended >= window.measureFrom && intended < window.end {
            latencies.record(nanoseconds: done - intended, worker: index)
        }
        if done >= window.measureFrom && done <= window.end { counts.operations += 1 }
    }

    /// An operation without a latency of its own (a message of a stream), counted when inside the window.
    func counted(at time: UInt64 = monotonicNanos()) {
        if time >= window.measureFrom && time <= window.end { counts.operations += 1 }
    }

    /// Messages and bytes that went out or came in at `time`, counted when inside the window.
    func sent(messages: Int = 1, bytes: Int, at time: UInt64 = monotonicNanos()) {
        guard time >= window.measureFrom && time <= window.end else { return }
        counts.messagesSent += messages
        counts.bytesSent += bytes
    }

    func received(messages: Int = 1, bytes: Int, at time: UInt64 = monotonicNanos()) {
        guard time >= window.measureFrom && time <= window.end else { return }
        counts.messagesReceived += messages
        counts.bytesReceived += bytes
    }

    /// A failed operation, by status code. Errors during warm-up count too: a run must be clean throughout.
    func failed(_ error: any Error) {
        if error is CancellationError { return }
        let code = (error as? RPCError)?.code ?? .unknown
        // Streams still open at the end are cancelled, or their connection closed.
        if (code == .cancelled || code == .unavailable) && isOver { return }
        counts.errors["\(code)", default: 0] += 1
    }
}

/// When a worker's operations are meant to start. Closed loop: now, until the window ends. Open loop: every
/// `workers / rate` seconds, whatever happened to the previous operation (the workers are spread over the
/// first interval, so that the load is even rather than in bursts).
struct Schedule: Sendable {
    private let interval: UInt64?
    private let end: UInt64
    private var next: UInt64

    init(index: Int, shape: LoadShape, window: Window) {
        end = window.end
        if let rate = shape.rate, rate > 0 {
            let interval = UInt64(1e9 * Double(shape.workers) / rate)
            self.interval = interval
            next = window.start + interval * UInt64(index) / UInt64(shape.workers)
        } else {
            interval = nil
            next = 0
        }
    }

    var isOpenLoop: Bool { interval != nil }

    /// The intended start of the next operation, after sleeping until it in open loop; nil once the run is over.
    mutating func next() async -> UInt64? {
        guard !Task.isCancelled, let intended = next(at: monotonicNanos()) else { return nil }
        do {
            try await sleep(untilNanos: intended)
        } catch {
            return nil
        }
        return intended
    }

    /// The intended start of the next operation when it is `now`; nil once the run is over.
    mutating func next(at now: UInt64) -> UInt64? {
        guard now < end else { return nil }
        guard let interval else { return now }
        // A worker that fell behind catches up at once, but not past the end of the window.
        let intended = next
        guard intended < end else { return nil }
        next += interval
        return intended
    }
}

/// A value behind a lock, as a reference: `Mutex` itself cannot go into an array or be captured.
final class Locked<Value: Sendable>: Sendable {
    private let mutex: Mutex<Value>

    init(_ value: Value) {
        mutex = Mutex(value)
    }

    func withLock<R>(_ body: (inout Value) throws -> R) rethrows -> R {
        try mutex.withLock { try body(&$0) }
    }
}
