public import ProtoRuntime

/// A service implementation that can be served: it registers its methods with a router.
public protocol RPCService: Sendable {
    func registerMethods(with router: inout RPCRouter)
}

/// The server side of one RPC as a transport presents it: serialized messages in and out.
public struct RPCServerStream: Sendable {
    /// Request messages, already deframed and decompressed; ends when the client half-closes.
    public let inbound: RPCAsyncSequence<[UInt8]>
    /// Response messages; the transport frames them and sends initial metadata before the first.
    public let outbound: RPCWriter<[UInt8]>

    public init(inbound: RPCAsyncSequence<[UInt8]>, outbound: RPCWriter<[UInt8]>) {
        self.inbound = inbound
        self.outbound = outbound
    }
}

/// A registered method: its descriptor and the handler over serialized messages.
public struct RPCRoute: Sendable {
    public let descriptor: MethodDescriptor
    /// Runs the RPC. Returning means status OK; throwing an ``RPCError`` chooses the status.
    public let handle: @Sendable (RPCServerStream, ServerContext) async throws -> Void
}

/// Maps `:path` to handlers. Typed registration decodes requests and encodes responses with protobuf-c and
/// enforces request cardinality for unary and server-streaming methods; it is `@inlinable`, so that each
/// generated service gets it specialized for its message types rather than run generically (with type
/// metadata looked up at run time for every message).
public struct RPCRouter: Sendable {
    private var routes: [String: RPCRoute] = [:]

    public init() {}

    public init(services: [any RPCService]) {
        for s in services { s.registerMethods(with: &self) }
    }

    public func route(forPath path: String) -> RPCRoute? {
        routes[path]
    }

    public var methods: [MethodDescriptor] {
        routes.values.map(\.descriptor).sorted { $0.path < $1.path }
    }

    public var services: Set<ServiceDescriptor> {
        Set(routes.values.map(\.descriptor.service))
    }

    /// Registers a handler over serialized messages (replacing any handler for the same path).
    public mutating func register(
        _ descriptor: MethodDescriptor,
        handler: @escaping @Sendable (RPCServerStream, ServerContext) async throws -> Void
    ) {
        routes[descriptor.path] = RPCRoute(descriptor: descriptor, handle: handler)
    }

    @inlinable
    public mutating func unary<Request: ProtoMessage, Response: ProtoMessage>(
        _ descriptor: MethodDescriptor,
        _ handler: @escaping @Sendable (Request, ServerContext) async throws -> Response
    ) {
        register(descriptor) { stream, context in
            let request: Request = try await Self.singleRequest(stream.inbound)
            try await stream.outbound.write(Self.encode(try await handler(request, context)))
        }
    }

    @inlinable
    public mutating func clientStreaming<Request: ProtoMessage, Response: ProtoMessage>(
        _ descriptor: MethodDescriptor,
        _ handler: @escaping @Sendable (RPCAsyncSequence<Request>, ServerContext) async throws -> Response
    ) {
        register(descriptor) { stream, context in
            let response = try await handler(stream.inbound.map(Self.decode), context)
            try await stream.outbound.write(Self.encode(response))
        }
    }

    @inlinable
    public mutating func serverStreaming<Request: ProtoMessage, Response: ProtoMessage>(
        _ descriptor: MethodDescriptor,
        _ handler: @escaping @Sendable (Request, RPCWriter<Response>, ServerContext) async throws -> Void
    ) {
        register(descriptor) { stream, context in
            let request: Request = try await Self.singleRequest(stream.inbound)
            try await handler(request, stream.outbound.map(Self.encode), context)
        }
    }

    @inlinable
    public mutating func bidirectionalStreaming<Request: ProtoMessage, Response: ProtoMessage>(
        _ descriptor: MethodDescriptor,
        _ handler: @escaping @Sendable (RPCAsyncSequence<Request>, RPCWriter<Response>, ServerContext) async throws -> Void
    ) {
        register(descriptor) { stream, context in
            try await handler(stream.inbound.map(Self.decode), stream.outbound.map(Self.encode), context)
        }
    }

    /// Exactly one request message: zero or several is a cardinality violation, UNIMPLEMENTED per
    /// grpc/grpc `doc/statuscodes.md`.
    @inlinable
    static func singleRequest<Request: ProtoMessage>(_ inbound: RPCAsyncSequence<[UInt8]>) async throws -> Request {
        var messages = inbound.makeAsyncIterator()
        guard let first = try await messages.next() else {
            throw RPCError(code: .unimplemented, message: "request cardinality violation: no request message")
        }
        guard try await messages.next() == nil else {
            throw RPCError(code: .unimplemented, message: "request cardinality violation: more than one request message")
        }
        return try decode(first)
    }

    @inlinable @Sendable
    static func decode<Request: ProtoMessage>(_ bytes: [UInt8]) throws -> Request {
        do {
            return try Request(serializedBytes: bytes)
        } catch {
            throw RPCError(code: .internal, message: "failed to parse request: \(error)", cause: error)
        }
    }

    @inlinable @Sendable
    static func encode<Response: ProtoMessage>(_ response: Response) throws -> [UInt8] {
        do {
            return try response.serializedBytes()
        } catch {
            throw RPCError(code: .internal, message: "failed to serialize response", cause: error)
        }
    }
}
