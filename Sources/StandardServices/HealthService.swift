import RPCCore
import StandardProtos
import Synchronization

/// `grpc.health.v1.Health` (grpc/grpc `doc/health-checking.md`): the server's health (`""`) and each
/// service's, with `Watch` streaming every change.
public final class HealthService: Grpc_Health_V1_Health.ServiceProtocol {
    public typealias Status = Grpc_Health_V1_HealthCheckResponse.ServingStatus

    private struct State {
        var statuses: [String: Status] = ["": .serving]
        var watchers: [Int: (service: String, continuation: AsyncStream<Status>.Continuation)] = [:]
        var nextWatcher = 0
        /// After `shutDown()`, every service is NOT_SERVING and stays so.
        var shutDown = false
    }

    private let state = Mutex(State())

    public init() {}

    /// Sets a service's status (`""` is the whole server) and tells its watchers.
    public func setStatus(_ status: Status, forService service: String) {
        let watchers = state.withLock { s -> [AsyncStream<Status>.Continuation] in
            guard !s.shutDown, s.statuses[service] != status else { return [] }
            s.statuses[service] = status
            return s.watchers.values.filter { $0.service == service }.map(\.continuation)
        }
        for w in watchers { w.yield(status) }
    }

    /// Marks every service NOT_SERVING and ignores later changes (grpc-go `Shutdown()`); called when a
    /// graceful shutdown begins, so load balancers drain the server.
    public func shutDown() {
        let notify = state.withLock { s -> [AsyncStream<Status>.Continuation] in
            s.shutDown = true
            for key in s.statuses.keys { s.statuses[key] = .notServing }
            return s.watchers.values.filter { s.statuses[$0.service] != nil }.map(\.continuation)
        }
        for w in notify { w.yield(.notServing) }
    }

    public func check(_ request: Grpc_Health_V1_HealthCheckRequest, context: ServerContext) async throws -> Grpc_Health_V1_HealthCheckResponse {
        guard let status = state.withLock({ $0.statuses[request.service] }) else {
            throw RPCError(code: .notFound, message: "unknown service \(RPCCore.Status.excerpt(request.service))")
        }
        return .with { $0.status = status }
    }

    /// Sends the current status at once (SERVICE_UNKNOWN for an unknown service, without ending the call),
    /// then every change, until the client goes away.
    public func watch(
        _ request: Grpc_Health_V1_HealthCheckRequest,
        responses: RPCWriter<Grpc_Health_V1_HealthCheckResponse>,
        context: ServerContext
    ) async throws {
        let (changes, continuation) = AsyncStream<Status>.makeStream(bufferingPolicy: .bufferingNewest(16))
        let (id, current) = state.withLock { s in
            let id = s.nextWatcher
            s.nextWatcher += 1
            s.watchers[id] = (request.service, continuation)
            return (id, s.statuses[request.service] ?? .serviceUnknown)
        }
        defer { _ = state.withLock { $0.watchers.removeValue(forKey: id) } }
        try await responses.write(.with { $0.status = current })
        var last = current
        for await status in changes where status != last {
            try await responses.write(.with { $0.status = status })
            last = status
        }
        try Task.checkCancellation()
    }
}
