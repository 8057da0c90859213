import Foundation

/// The outcome of a run, for people (`text`) and machines (JSON).
public struct Report: Sendable, Codable {
    public struct Percentiles: Sendable, Codable {
        /// Microseconds.
        public var p50, p90, p99, p999, max: Double
        public var samples: UInt64
    }

    public struct CPU: Sendable, Codable {
        /// Processor seconds per second of the window (1.0 = one core busy).
        public var cores: Double
        /// The client's busiest thread, as a share of one processor.
        public var busiestThread: Double?
        /// Processor microseconds per operation.
        public var microsecondsPerOperation: Double
    }

    public var scenario: ScenarioName
    public var target: String
    public var shape: LoadShape
    public var openLoop: Bool
    public var seconds: Double
    public var operations: Int
    public var operationsPerSecond: Double
    public var messagesPerSecond: Double
    /// Request and response bytes, per second, in millions.
    public var megabytesPerSecond: Double
    /// Nil when the scenario has no operation to time (`server-streaming`, `client-streaming`).
    public var latency: Percentiles?
    /// Failed operations by status code.
    public var errors: [String: Int]
    public var client: CPU
    public var server: CPU?
    /// The client used at least 90% of the processors it may run on, or one of its threads (an event loop) was
    /// at least 90% busy: the figures measure the client too.
    public var clientBound: Bool
    public var notes: [String]

    init(
        scenario: ScenarioName, target: String, shape: LoadShape, seconds: Double, counts: Counts, latencies: Latencies,
        client: CPUUsage.Sample, server: CPUUsage.Sample?, notes: [String]
    ) {
        self.scenario = scenario
        self.target = target
        self.shape = shape
        openLoop = shape.rate != nil
        self.seconds = seconds
        operations = counts.operations
        operationsPerSecond = Double(counts.operations) / seconds
        messagesPerSecond = Double(counts.messagesSent + counts.messagesReceived) / seconds
        megabytesPerSecond = Double(counts.bytesSent + counts.bytesReceived) / seconds / 1e6
        latency = latencies.count == 0 ? nil : Percentiles(
            p50: Double(latencies.percentile(50)) / 1e3, p90: Double(latencies.percentile(90)) / 1e3,
            p99: Double(latencies.percentile(99)) / 1e3, p999: Double(latencies.percentile(99.9)) / 1e3,
            max: Double(latencies.max) / 1e3, samples: latencies.count
        )
        errors = counts.errors
        let operations = max(1, Double(counts.operations))
        self.client = CPU(
            cores: client.seconds / seconds, busiestThread: client.busiestThread,
            microsecondsPerOperation: client.seconds * 1e6 / operations
        )
        self.server = server.map { CPU(cores: $0.seconds / seconds, microsecondsPerOperation: $0.seconds * 1e6 / operations) }
        clientBound = client.seconds / seconds >= 0.9 * Double(client.available) || client.busiestThread >= 0.9
        self.notes = notes
    }

    public func json() throws -> String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        return String(decoding: try encoder.encode(self), as: UTF8.self)
    }

    public var text: String {
        var lines: [String] = []
        let loop = shape.rate.map { "open loop at \(Self.number($0))/s" } ?? "closed loop"
        lines.append(
            "\(scenario.rawValue) against \(target): \(shape.connections) connection(s) x \(shape.streams) stream(s), "
                + "payload \(shape.payload) B, \(loop), \(Self.number(seconds)) s after \(Self.number(shape.warmup.seconds)) s warm-up"
        )
        lines.append(
            "throughput: \(Self.number(operationsPerSecond)) ops/s, \(Self.number(messagesPerSecond)) msg/s, "
                + "\(Self.number(megabytesPerSecond)) MB/s (\(operations) ops)"
        )
        if let latency {
            lines.append(
                "latency (µs): p50 \(Self.number(latency.p50))  p90 \(Self.number(latency.p90))  p99 \(Self.number(latency.p99))  "
                    + "p99.9 \(Self.number(latency.p999))  max \(Self.number(latency.max))"
            )
        }
        lines.append(errors.isEmpty ? "errors: none" : "errors: " + errors.sorted { $0.key < $1.key }.map { "\($0.key) \($0.value)" }.joined(separator: ", "))
        var cpu = "client CPU: \(Self.number(client.cores)) cores (busiest thread \(Int((client.busiestThread ?? 0) * 100))%), "
            + "\(Self.number(client.microsecondsPerOperation)) µs/op"
        if let server { cpu += "; server CPU: \(Self.number(server.cores)) cores, \(Self.number(server.microsecondsPerOperation)) µs/op" }
        lines.append(cpu)
        if clientBound {
            lines.append("warning: the client is saturated (≥ 90% of its processors, or of one thread): these figures are the client's limit, not the server's")
        }
        return (lines + notes).joined(separator: "\n")
    }

    static func number(_ value: Double) -> String {
        switch value {
        case 1000...: String(format: "%.0f", value)
        case 10...: String(format: "%.1f", value)
        default: String(format: "%.2f", value)
        }
    }
}
