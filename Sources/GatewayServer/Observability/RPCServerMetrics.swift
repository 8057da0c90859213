import CoreMetrics
import Metrics
import RPCCore
import Synchronization

/// The server's RPC metrics through swift-metrics, named after OpenTelemetry's RPC conventions in Prometheus
/// form: `rpc_method` is the fully qualified method (`gateway.user.v1.UserService/GetUser`),
/// `rpc_grpc_status_code` the status code's name (`OK`, `UNAUTHENTICATED`).
///
/// - `rpc_server_started_total{rpc_method}`, `rpc_server_handled_total{rpc_method, rpc_grpc_status_code}`
/// - `rpc_server_duration_seconds{rpc_method}` (histogram, from the call's start to its status)
/// - `rpc_server_active_streams{rpc_method}` (RPCs in flight)
/// - `rpc_server_request_messages_total`, `rpc_server_response_messages_total`,
///   `rpc_server_request_bytes_total`, `rpc_server_response_bytes_total` (all `{rpc_method}`): messages as
///   handlers read and write them, so bytes are serialized message bytes before compression and framing.
///
/// Labels come only from registered methods, so their number is bounded. Handles are made once per method and
/// per method and code, then reused.
public final class RPCServerMetrics: Sendable {
    public static let durationLabel = "rpc_server_duration_seconds"

    /// One method's handles.
    struct Method: Sendable {
        let started: Counter
        let duration: Timer
        let active: Meter
        let requestMessages: Counter
        let responseMessages: Counter
        let requestBytes: Counter
        let responseBytes: Counter
    }

    private struct HandledKey: Hashable {
        let method: String
        let code: StatusCode
    }

    private let factory: any MetricsFactory
    private let methods = Mutex<[String: Method]>([:])
    private let handledCounters = Mutex<[HandledKey: Counter]>([:])

    /// Metrics made by `factory`: the bootstrapped one by default (a no-op until `main` bootstraps one).
    public init(factory: any MetricsFactory = MetricsSystem.factory) {
        self.factory = factory
    }

    func method(_ descriptor: MethodDescriptor) -> Method {
        let name = descriptor.description
        if let method = methods.withLock({ $0[name] }) { return method }
        let dimensions = [("rpc_method", name)]
        let method = Method(
            started: Counter(label: "rpc_server_started_total", dimensions: dimensions, factory: factory),
            duration: Timer(label: Self.durationLabel, dimensions: dimensions, factory: factory),
            active: Meter(label: "rpc_server_active_streams", dimensions: dimensions, factory: factory),
            requestMessages: Counter(label: "rpc_server_request_messages_total", dimensions: dimensions, factory: factory),
            responseMessages: Counter(label: "rpc_server_response_messages_total", dimensions: dimensions, factory: factory),
            requestBytes: Counter(label: "rpc_server_request_bytes_total", dimensions: dimensions, factory: factory),
            responseBytes: Counter(label: "rpc_server_response_bytes_total", dimensions: dimensions, factory: factory)
        )
        return methods.withLock { methods in
            if let existing = methods[name] { return existing }
            methods[name] = method
            return method
        }
    }

    func handled(_ descriptor: MethodDescriptor, code: StatusCode) -> Counter {
        let key = HandledKey(method: descriptor.description, code: code)
        if let counter = handledCounters.withLock({ $0[key] }) { return counter }
        let counter = Counter(
            label: "rpc_server_handled_total",
            dimensions: [("rpc_method", key.method), ("rpc_grpc_status_code", "\(code)")],
            factory: factory
        )
        return handledCounters.withLock { counters in
            if let existing = counters[key] { return existing }
            counters[key] = counter
            return counter
        }
    }
}
