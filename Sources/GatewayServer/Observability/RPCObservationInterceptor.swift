import Logging
import Metrics
import RPCCore
import RPCHTTP2
import Synchronization

/// What the interceptors inside learn about a call for ``RPCObservationInterceptor`` to report: the caller's
/// user id, known only after authentication, which runs inside.
public final class RPCObservation: Sendable {
    private let caller = Mutex<(userID: String?, refusal: String?)>((nil, nil))

    public init() {}

    /// The authenticated caller's uid (the token's `sub`), nil for public methods and refused calls.
    public var userID: String? {
        get { caller.withLock { $0.userID } }
        set { caller.withLock { $0.userID = newValue } }
    }

    /// Why the credential was refused (a `TokenVerificationError.Reason`), for the log line's `auth.refused`.
    public var credentialRefusal: String? {
        get { caller.withLock { $0.refusal } }
        set { caller.withLock { $0.refusal = newValue } }
    }
}

/// The call's ``RPCObservation``, put into ``ServerContext/values`` by ``RPCObservationInterceptor``.
public enum RPCObservationKey: ContextValueKey {
    public typealias Value = RPCObservation
}

/// The outermost interceptor: one log line per RPC and the RPC metrics (``RPCServerMetrics``).
///
/// The line, at `info`: `rpc.method`, `rpc.grpc.status_code` (the code's name), `rpc.duration_ms`, `net.peer` and,
/// when a token was verified, `user.id`, or when it was refused, `auth.refused` (the reason). Never metadata values, so never a token. The status is the one the
/// client was sent: the transport's when it ended the call itself (a bad request message, the deadline),
/// else the handler's outcome as the transport maps it (an `RPCError`'s code, `CANCELLED` for a cancelled
/// task, `DEADLINE_EXCEEDED` when that cancellation came from the deadline, `UNKNOWN` for any other error).
/// Calls refused before a handler runs (unknown methods, bad headers) never reach interceptors: the
/// transport reports those (``RPCServerMetrics/refused(_:)``).
public struct RPCObservationInterceptor: ServerInterceptor {
    private let logger: Logger
    private let metrics: RPCServerMetrics

    public init(logger: Logger, metrics: RPCServerMetrics = RPCServerMetrics()) {
        self.logger = logger
        self.metrics = metrics
    }

    public func intercept(
        _ stream: RPCServerStream,
        context: ServerContext,
        next: @Sendable (RPCServerStream, ServerContext) async throws -> Void
    ) async throws {
        let method = metrics.method(context.descriptor)
        let observation = RPCObservation()
        var context = context
        context.values[RPCObservationKey.self] = observation
        method.started.increment()
        method.active.increment()
        let start = ContinuousClock.now
        var code = StatusCode.ok
        defer {
            let elapsed = ContinuousClock.now - start
            method.active.decrement()
            method.duration.record(duration: elapsed)
            method.handled(code).increment()
            var line = Self.line(context: context, code: code, elapsed: elapsed, userID: observation.userID)
            if let refusal = observation.credentialRefusal { line["auth.refused"] = "\(refusal)" }
            logger.info("rpc", metadata: line)
        }
        let counted = RPCServerStream(
            inbound: stream.inbound.map { message in
                method.requestMessages.increment()
                method.requestBytes.increment(by: message.count)
                return message
            },
            outbound: RPCWriter { message in
                try await stream.outbound.write(message)
                method.responseMessages.increment()
                method.responseBytes.increment(by: message.count)
            }
        )
        do {
            try await next(counted, context)
            code = context.responseMetadata.endedByTransport?.code ?? .ok
        } catch {
            code = context.responseMetadata.endedByTransport?.code ?? Self.statusCode(for: error, deadline: context.deadline)
            throw error
        }
    }

    /// The status a handler's error ends the call with, as the transports map it.
    static func statusCode(for error: any Error, deadline: ContinuousClock.Instant?) -> StatusCode {
        let code = RPCError(handlerError: error).code
        if code == .cancelled, let deadline, ContinuousClock.now >= deadline {
            return .deadlineExceeded
        }
        return code
    }

    static func line(context: ServerContext, code: StatusCode, elapsed: Duration, userID: String?) -> Logger.Metadata {
        line(method: context.descriptor.description, code: code, elapsed: elapsed, peer: context.peer, userID: userID)
    }

    static func line(method: String, code: StatusCode, elapsed: Duration, peer: String, userID: String?) -> Logger.Metadata {
        let (seconds, attoseconds) = elapsed.components
        let milliseconds = (Double(seconds) * 1_000 + Double(attoseconds) / 1e15)
        var metadata: Logger.Metadata = [
            "rpc.method": "\(method)",
            "rpc.grpc.status_code": "\(code)",
            "rpc.duration_ms": .stringConvertible((milliseconds * 1_000).rounded() / 1_000),
            "net.peer": "\(peer)",
        ]
        if let userID { metadata["user.id"] = "\(userID)" }
        return metadata
    }
}

/// The same log line and metrics for calls the transport refused before any interceptor ran (an unknown
/// method, invalid headers), so that they are not invisible: `rpc.method` is the path the client sent, cut to
/// 100 bytes; the metrics count it under its method, or `unknown`.
public struct RefusedCallReporter: RefusedCallObserver {
    private let logger: Logger
    private let metrics: RPCServerMetrics

    public init(logger: Logger, metrics: RPCServerMetrics) {
        self.logger = logger
        self.metrics = metrics
    }

    public func refused(path: String, status: Status, peer: String) {
        metrics.refused(path: path, code: status.code)
        let method = Status.excerpt(path.first == "/" ? path.dropFirst() : Substring(path))
        logger.info("rpc", metadata: RPCObservationInterceptor.line(method: method, code: status.code, elapsed: .zero, peer: peer, userID: nil))
    }
}

/// Placed right after ``AuthInterceptor``: copies the verified caller's uid into the call's ``RPCObservation``,
/// so the outer ``RPCObservationInterceptor`` can log it although authentication runs inside it.
public struct CallerObservationInterceptor: ServerInterceptor {
    public init() {}

    public func intercept(
        _ stream: RPCServerStream,
        context: ServerContext,
        next: @Sendable (RPCServerStream, ServerContext) async throws -> Void
    ) async throws {
        if let observation = context.values[RPCObservationKey.self], let uid = context.principal?.uid {
            observation.userID = uid
        }
        try await next(stream, context)
    }
}
