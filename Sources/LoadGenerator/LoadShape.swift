#if canImport(Glibc)
import Glibc
#endif

/// How much load, and how it is offered.
public struct LoadShape: Sendable, Codable {
    /// TCP connections (one `HTTP2ClientTransport` each).
    public var connections = 1
    /// Concurrent workers per connection: each keeps one RPC (or one stream) going.
    public var streams = 1
    /// Request and response payload, in bytes.
    public var payload = 0
    public var duration: Duration = .seconds(10)
    public var warmup: Duration = .seconds(2)
    /// Open loop: operations per second over all workers, each started at its intended time whatever the
    /// previous one did, its latency measured from that time. Nil: closed loop.
    public var rate: Double?
    /// `streaming-qps`: messages in flight per stream.
    public var inFlight = 10
    /// Deadline of each RPC; none by default, as h2load and grpc-go's benchmark client do (a deadline costs
    /// the server a timer per call). Whatever it is, the run ends `grace` after the window.
    public var timeout: Duration?
    /// How long operations still in flight at the end of the window are waited for.
    public var grace: Duration = .seconds(10)

    public init() {}

    public var workers: Int { connections * streams }

    enum CodingKeys: String, CodingKey {
        case connections, streams, payload, durationSeconds, warmupSeconds, rate, inFlight
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(connections, forKey: .connections)
        try container.encode(streams, forKey: .streams)
        try container.encode(payload, forKey: .payload)
        try container.encode(duration.seconds, forKey: .durationSeconds)
        try container.encode(warmup.seconds, forKey: .warmupSeconds)
        try container.encodeIfPresent(rate, forKey: .rate)
        try container.encode(inFlight, forKey: .inFlight)
    }

    public init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        connections = try container.decode(Int.self, forKey: .connections)
        streams = try container.decode(Int.self, forKey: .streams)
        payload = try container.decode(Int.self, forKey: .payload)
        duration = .nanoseconds(Int64(try container.decode(Double.self, forKey: .durationSeconds) * 1e9))
        warmup = .nanoseconds(Int64(try container.decode(Double.self, forKey: .warmupSeconds) * 1e9))
        rate = try container.decodeIfPresent(Double.self, forKey: .rate)
        inFlight = try container.decode(Int.self, forKey: .inFlight)
    }
}

extension Duration {
    var seconds: Double { Double(components.seconds) + Double(components.attoseconds) / 1e18 }
    var nanoseconds: UInt64 { UInt64(max(0, components.seconds)) * 1_000_000_000 + UInt64(max(0, components.attoseconds) / 1_000_000_000) }
}

/// Monotonic time in nanoseconds (`CLOCK_MONOTONIC`): cheap, and comparable across threads.
@inline(__always)
func monotonicNanos() -> UInt64 {
    var now = timespec()
    clock_gettime(CLOCK_MONOTONIC, &now)
    return UInt64(now.tv_sec) * 1_000_000_000 + UInt64(now.tv_nsec)
}

/// Sleeps until a monotonic time (returns at once if it has passed).
func sleep(untilNanos deadline: UInt64) async throws {
    let now = monotonicNanos()
    if deadline > now { try await Task.sleep(for: .nanoseconds(Int64(deadline - now))) }
}
