import Synchronization

/// Runs RPCs against a router in the same process: for tests of services and generated stubs, with the same
/// status, metadata, deadline and cancellation behaviour a network transport has.
public struct InProcessTransport: ClientTransport {
    public let router: RPCRouter

    public init(router: RPCRouter) {
        self.router = router
    }

    public init(services: [any RPCService], interceptors: [ScopedServerInterceptor] = []) {
        self.init(router: RPCRouter(services: services).intercepted(by: interceptors))
    }

    public func withStream<R: Sendable>(
        descriptor: MethodDescriptor,
        metadata: Metadata,
        options: CallOptions,
        _ body: @Sendable (RPCClientStream) async throws -> R
    ) async throws -> R {
        let (requests, requestSink) = AsyncThrowingStream<[UInt8], any Error>.makeStream()
        let (responses, responseSink) = AsyncThrowingStream<ClientResponsePart, any Error>.makeStream()
        let deadline = options.timeout.map { ContinuousClock.now + $0 }
        let context = ServerContext(descriptor: descriptor, requestMetadata: metadata, peer: "in-process", deadline: deadline)
        let route = router.route(forPath: descriptor.path)

        return try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask {
                let headersSent = Mutex(false)
                let sendHeaders: @Sendable () -> Void = {
                    if headersSent.withLock({ sent in defer { sent = true }; return !sent }) {
                        responseSink.yield(.metadata(context.responseMetadata.takeInitial()))
                    }
                }
                let outbound = RPCWriter<[UInt8]> { message in
                    sendHeaders()
                    responseSink.yield(.message(message))
                }
                let status: Status
                var trailers = Metadata()
                do {
                    guard let route else {
                        throw RPCError(code: .unimplemented, message: "unknown method \(descriptor)")
                    }
                    let stream = RPCServerStream(inbound: RPCAsyncSequence(wrapping: requests), outbound: outbound)
                    try await withDeadline(deadline) { try await route.handle(stream, context) }
                    status = .ok
                } catch {
                    let error = RPCError(handlerError: error)
                    status = error.status
                    trailers = error.metadata
                }
                trailers.add(contentsOf: context.responseMetadata.trailing)
                // An error before any message is sent trailers-only, with the initial metadata folded into the
                // trailers, as a network server does.
                if status.code == .ok {
                    sendHeaders()
                } else if !headersSent.withLock({ $0 }) {
                    var merged = context.responseMetadata.takeInitial()
                    merged.add(contentsOf: trailers)
                    trailers = merged
                }
                responseSink.yield(.status(status, trailers: trailers))
                responseSink.finish()
            }
            let stream = RPCClientStream(
                outbound: RPCWriter { requestSink.yield($0) },
                finish: { requestSink.finish() },
                inbound: RPCAsyncSequence(wrapping: responses)
            )
            defer { group.cancelAll() }
            return try await body(stream)
        }
    }
}
