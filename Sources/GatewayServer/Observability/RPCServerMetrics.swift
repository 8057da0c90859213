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
/// Labels come only from registered methods (and `unknown`, for refused calls to other paths), so their number
/// is bounded. The methods given at init get their
/// handles then, and a call finds them without taking a lock (a process-wide lock on every RPC serialises
/// the event loops); a handled counter is made on its code's first use, once (an atomic reference), so codes
/// never returned add no series. Methods not given at init take the slower, locked path.
public final class RPCServerMetrics: Sendable {
    public static let durationLabel = "rpc_server_duration_seconds"

    /// One method's handles.
    final class Method: Sendable {
        let started: Counter
        let duration: Timer
        let active: Meter
        let requestMessages: Counter
        let responseMessages: Counter
        let requestBytes: Counter
        let responseBytes: Counter
        /// `rpc_server_handled_total` by status code (`StatusCode.rawValue`), each made on first use.
        private let handled: [LazyCounter]
        private let name: String
        private let factory: any MetricsFactory

        init(name: String, factory: any MetricsFactory) {
            let dimensions = [("rpc_method", name)]
            self.name = name
            self.factory = factory
            started = Counter(label: "rpc_server_started_total", dimensions: dimensions, factory: factory)
            duration = Timer(label: RPCServerMetrics.durationLabel, dimensions: dimensions, factory: factory)
            active = Meter(label: "rpc_server_active_streams", dimensions: dimensions, factory: factory)
            requestMessages = Counter(label: "rpc_server_request_messages_total", dimensions: dimensions, factory: factory)
            responseMessages = Counter(label: "rpc_server_response_messages_total", dimensions: dimensions, factory: factory)
            requestBytes = Counter(label: "rpc_server_request_bytes_total", dimensions: dimensions, factory: factory)
            responseBytes = Counter(label: "rpc_server_response_bytes_total", dimensions: dimensions, factory: factory)
            handled = (0...StatusCode.unauthenticated.rawValue).map { _ in LazyCounter() }
        }

        func handled(_ code: StatusCode) -> Counter {
            // A code outside the canonical ones (a peer's, passed on) gets a handle each time; the factory keeps one.
            guard handled.indices.contains(code.rawValue) else { return makeHandled(code) }
            return handled[code.rawValue].get(orMake: makeHandled(code))
        }

        private func makeHandled(_ code: StatusCode) -> Counter {
            Counter(
                label: "rpc_server_handled_total", dimensions: [("rpc_method", name), ("rpc_grpc_status_code", "\(code)")],
                factory: factory
            )
        }
    }

    /// A handle made once, on first use, without a lock: racing first uses may each make one, and the first
    /// stored wins (the factory hands both the same series).
    final class LazyCounter: Sendable {
        private let reference = AtomicLazyReference<Counter>()

        func get(orMake make: @autoclosure () -> Counter) -> Counter {
            reference.load() ?? reference.storeIfNil(make())
        }
    }

    private let factory: any MetricsFactory
    private let known: [String: Method]
    private let others = Mutex<[String: Method]>([:])
    /// Refused calls to paths that name no registered method: a client's path never becomes a label.
    private let unknown: Method

    /// Metrics made by `factory`: the bootstrapped one by default (a no-op until `main` bootstraps one).
    /// `methods` (the server's registered methods) get their handles now.
    public init(factory: any MetricsFactory = MetricsSystem.factory, methods: [MethodDescriptor] = []) {
        self.factory = factory
        var known: [String: Method] = [:]
        for method in methods {
            known[method.description] = Method(name: method.description, factory: factory)
        }
        self.known = known
        unknown = Method(name: "unknown", factory: factory)
    }

    /// A call the transport refused before any handler ran (``RefusedCallObserver``): counted as started and
    /// handled under its method when `path` names a registered one, else under `rpc_method="unknown"`.
    public func refused(path: String, code: StatusCode) {
        let method = path.first == "/" ? known[String(path.dropFirst())] ?? unknown : unknown
        method.started.increment()
        method.handled(code).increment()
    }

    func method(_ descriptor: MethodDescriptor) -> Method {
        let name = descriptor.description
        if let method = known[name] { return method }
        return others.withLock { methods in
            if let existing = methods[name] { return existing }
            let method = Method(name: name, factory: factory)
            methods[name] = method
            return method
        }
    }
}
