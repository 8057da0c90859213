/// Runs around server RPCs, in order: it can read the request's metadata and context, reject the call by
/// throwing an ``RPCError``, attach values to the context (``ServerContext/values``), or wrap the message
/// streams. Interceptors see serialized messages, so one works for every method.
public protocol ServerInterceptor: Sendable {
    func intercept(
        _ stream: RPCServerStream,
        context: ServerContext,
        next: @Sendable (RPCServerStream, ServerContext) async throws -> Void
    ) async throws
}

/// Which methods an interceptor applies to.
public enum InterceptorScope: Sendable {
    case all
    /// Every method of these services (fully qualified names).
    case services(Set<String>)
    case methods(Set<MethodDescriptor>)

    public func contains(_ method: MethodDescriptor) -> Bool {
        switch self {
        case .all: true
        case .services(let names): names.contains(method.service.fullyQualifiedName)
        case .methods(let methods): methods.contains(method)
        }
    }
}

/// A server interceptor with the methods it applies to.
public struct ScopedServerInterceptor: Sendable {
    public let interceptor: any ServerInterceptor
    public let scope: InterceptorScope

    public init(_ interceptor: any ServerInterceptor, scope: InterceptorScope = .all) {
        self.interceptor = interceptor
        self.scope = scope
    }
}

extension RPCRouter {
    /// The same routes, each wrapped by the interceptors in scope for it; the first interceptor is outermost.
    public func intercepted(by interceptors: [ScopedServerInterceptor]) -> RPCRouter {
        var router = RPCRouter()
        for method in methods {
            guard let route = route(forPath: method.path) else { continue }
            let chain = interceptors.filter { $0.scope.contains(method) }.map(\.interceptor)
            var handle = route.handle
            for interceptor in chain.reversed() {
                let inner = handle
                handle = { stream, context in try await interceptor.intercept(stream, context: context, next: inner) }
            }
            router.register(method, handler: handle)
        }
        return router
    }
}

/// What a client interceptor may change before a call goes out.
public struct ClientCall: Sendable {
    public var descriptor: MethodDescriptor
    public var metadata: Metadata
    public var options: CallOptions

    public init(descriptor: MethodDescriptor, metadata: Metadata, options: CallOptions) {
        self.descriptor = descriptor
        self.metadata = metadata
        self.options = options
    }
}

/// Runs around client RPCs, in order: it can add metadata or change options, refuse the call by throwing,
/// or wrap the stream (to observe or transform messages and the status).
public protocol ClientInterceptor: Sendable {
    func intercept<R: Sendable>(
        _ call: ClientCall,
        next: (ClientCall, @Sendable (RPCClientStream) async throws -> R) async throws -> R,
        body: @escaping @Sendable (RPCClientStream) async throws -> R
    ) async throws -> R
}

/// A transport that runs client interceptors before another transport.
public struct InterceptedClientTransport: ClientTransport {
    public let base: any ClientTransport
    public let interceptors: [any ClientInterceptor]

    public init(_ base: any ClientTransport, interceptors: [any ClientInterceptor]) {
        self.base = base
        self.interceptors = interceptors
    }

    public func withStream<R: Sendable>(
        descriptor: MethodDescriptor,
        metadata: Metadata,
        options: CallOptions,
        _ body: @Sendable (RPCClientStream) async throws -> R
    ) async throws -> R {
        try await withoutActuallyEscaping(body) { body in
            try await run(ClientCall(descriptor: descriptor, metadata: metadata, options: options), interceptors[...], body)
        }
    }

    private func run<R: Sendable>(
        _ call: ClientCall,
        _ remaining: ArraySlice<any ClientInterceptor>,
        _ body: @escaping @Sendable (RPCClientStream) async throws -> R
    ) async throws -> R {
        guard let first = remaining.first else {
            return try await base.withStream(descriptor: call.descriptor, metadata: call.metadata, options: call.options, body)
        }
        return try await first.intercept(call, next: { call, body in
            try await withoutActuallyEscaping(body) { try await run(call, remaining.dropFirst(), $0) }
        }, body: body)
    }
}
