import Foundation
import NIOPosix
import RPCCore
import RPCHTTP2

/// Runs one scenario against one server and measures it.
public enum Runner {
    public struct Target: Sendable {
        public var host: String
        public var port: Int
        /// Sent with every call (e.g. `authorization`).
        public var metadata: Metadata
        /// The connections' settings (TLS among them).
        public var transport: GRPCClientConfiguration

        public init(host: String, port: Int, metadata: Metadata = [:], transport: GRPCClientConfiguration = .defaults) {
            self.host = host
            self.port = port
            self.metadata = metadata
            self.transport = transport
        }
    }

    public struct Failure: Error, CustomStringConvertible {
        public var description: String
    }

    public static func run(
        _ name: ScenarioName, target: Target, shape: LoadShape, options: ScenarioOptions = .init(), serverPID: Int32? = nil
    ) async throws -> Report {
        guard shape.connections > 0, shape.streams > 0, shape.payload >= 0, shape.duration > .zero else {
            throw Failure(description: "connections, streams and duration must be positive")
        }
        if shape.rate != nil, !name.allowsOpenLoop {
            throw Failure(description: "\(name.rawValue) has no responses to time: --rate applies to the other scenarios")
        }
        let scenario = try name.make(shape: shape, options: options)
        // One event loop per connection, which its workers' tasks run on too (see EventLoopExecutor).
        let loops = (0..<shape.connections).map { _ in MultiThreadedEventLoopGroup.singleton.next() }
        let transports = loops.map { HTTP2ClientTransport(host: target.host, port: target.port, configuration: target.transport, eventLoopGroup: $0) }
        let executors = loops.map(EventLoopExecutor.init)
        do {
            let report = try await run(
                scenario, name: name, transports: transports, executors: executors, target: target, shape: shape, serverPID: serverPID
            )
            for transport in transports { await transport.close() }
            return report
        } catch {
            for transport in transports { await transport.close() }
            throw error
        }
    }

    private static func run(
        _ scenario: any Scenario, name: ScenarioName, transports: [HTTP2ClientTransport], executors: [EventLoopExecutor],
        target: Target, shape: LoadShape, serverPID: Int32?
    ) async throws -> Report {
        let latencies = ShardedLatencies()
        let setup = Worker(
            index: 0, transport: transports[0], executor: executors[0], metadata: target.metadata, shape: shape,
            window: Window(shape: shape), latencies: latencies
        )
        do {
            try await scenario.prepare(setup)
        } catch {
            throw Failure(description: "preparing \(name.rawValue) failed: \(error)")
        }

        let window = Window(shape: shape)
        let workers = (0..<shape.workers).map { index in
            let transport = transports[index % shape.connections]
            return Worker(
                index: index, transport: transport, executor: executors[index % shape.connections], metadata: target.metadata,
                shape: shape, window: window, latencies: latencies, closeConnection: { await transport.close() }
            )
        }
        // CPU is sampled at the edges of the measured window, beside the workers.
        async let usage = CPUUsage.measure(window: window, serverPID: serverPID)
        // Operations still in flight `grace` after the window are cancelled (a server that stopped answering).
        let notes = await withTaskGroup(of: [String]?.self) { group in
            group.addTask { await scenario.runAll(workers) }
            group.addTask {
                try? await sleep(untilNanos: window.end + shape.grace.nanoseconds)
                return nil
            }
            let first = await group.next()!
            group.cancelAll()
            return first ?? ["operations still in flight \(shape.grace) after the window were cancelled"]
        }
        let (client, server) = await usage

        var counts = Counts()
        for worker in workers { counts.add(worker.counts) }
        return Report(
            scenario: name, target: "\(target.host):\(target.port)", shape: shape, seconds: window.seconds, counts: counts,
            latencies: latencies.merged(), client: client, server: server, notes: notes
        )
    }
}

/// Processor time used during the window: this process's (`getrusage`, and per thread from
/// `/proc/self/task`) and the server's (`/proc/PID/stat`). Sampled on a thread of its own, so that busy
/// workers cannot delay the samples.
enum CPUUsage {
    struct Sample: Sendable {
        var seconds: Double
        /// Processors this process may run on.
        var available: Int
        /// The busiest thread's share of one processor (a saturated event loop shows here first).
        var busiestThread: Double = 0
    }

    /// Processors this thread may run on: its affinity mask, which `taskset` sets for the whole process
    /// (Foundation's `activeProcessorCount` counts the machine's, so a client pinned to one of two processors
    /// and saturated looked half idle).
    static func availableProcessors() -> Int {
        (try? String(contentsOfFile: "/proc/thread-self/status", encoding: .utf8)).flatMap(allowedProcessors(inStatus:))
            ?? ProcessInfo.processInfo.activeProcessorCount
    }

    /// The processors in a `/proc/…/status` text's `Cpus_allowed` mask (hex, in comma-separated words).
    static func allowedProcessors(inStatus text: String) -> Int? {
        guard let line = text.split(separator: "\n").first(where: { $0.hasPrefix("Cpus_allowed:") }) else { return nil }
        var count = 0
        for character in line.dropFirst("Cpus_allowed:".count) where character != "," && !character.isWhitespace {
            guard let digit = character.hexDigitValue else { return nil }
            count += digit.nonzeroBitCount
        }
        return count > 0 ? count : nil
    }

    static func measure(window: Window, serverPID: Int32?) async -> (client: Sample, server: Sample?) {
        await withCheckedContinuation { continuation in
            Thread {
                sleep(untilMonotonic: window.measureFrom)
                let clientStart = selfSeconds()
                let threadsStart = threadSeconds()
                let serverStart = serverPID.flatMap { processSeconds("/proc/\($0)/stat") }
                sleep(untilMonotonic: window.end)
                let threadsEnd = threadSeconds()
                let busiest = threadsEnd.map { id, end in end - (threadsStart[id] ?? 0) }.max() ?? 0
                let client = Sample(
                    seconds: selfSeconds() - clientStart, available: availableProcessors(),
                    busiestThread: busiest / window.seconds
                )
                let server = serverPID.flatMap { processSeconds("/proc/\($0)/stat") }.flatMap { end in
                    serverStart.map { Sample(seconds: end - $0, available: 1) }
                }
                continuation.resume(returning: (client, server))
            }.start()
        }
    }

    private static func sleep(untilMonotonic nanos: UInt64) {
        var deadline = timespec(tv_sec: Int(nanos / 1_000_000_000), tv_nsec: Int(nanos % 1_000_000_000))
        while clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &deadline, nil) == EINTR {}
    }

    static func selfSeconds() -> Double {
        var usage = rusage()
        getrusage(RUSAGE_SELF.rawValue, &usage)
        return Double(usage.ru_utime.tv_sec + usage.ru_stime.tv_sec) + Double(usage.ru_utime.tv_usec + usage.ru_stime.tv_usec) / 1e6
    }

    /// Each thread of this process: its user plus system time.
    static func threadSeconds() -> [String: Double] {
        let ids = (try? FileManager.default.contentsOfDirectory(atPath: "/proc/self/task")) ?? []
        return Dictionary(uniqueKeysWithValues: ids.compactMap { id in processSeconds("/proc/self/task/\(id)/stat").map { (id, $0) } })
    }

    /// User plus system time from a `stat` file of proc(5): fields 14 and 15.
    static func processSeconds(_ path: String) -> Double? {
        guard let text = try? String(contentsOfFile: path, encoding: .utf8), let close = text.lastIndex(of: ")") else { return nil }
        // After the command name: state is field 3, so utime (14) and stime (15) are the 12th and 13th.
        let fields = text[text.index(after: close)...].split(separator: " ")
        guard fields.count > 12, let user = Double(fields[11]), let system = Double(fields[12]) else { return nil }
        return (user + system) / Double(sysconf(Int32(_SC_CLK_TCK)))
    }
}
