public import ProtoRuntime
import Synchronization

/// Message compression a transport can apply (`grpc-encoding`).
public enum CompressionAlgorithm: String, Sendable, Hashable {
    case gzip
    case deflate
}

/// Per-call options.
public struct CallOptions: Sendable {
    /// How long the client waits; sent as `grpc-timeout` and enforced on both sides.
    public var timeout: Duration?
    /// Compress the request messages.
    public var compression: CompressionAlgorithm?

    public init(timeout: Duration? = nil, compression: CompressionAlgorithm? = nil) {
        self.timeout = timeout
        self.compression = compression
    }

    public static var defaults: Self { .init() }
}

/// What a client receives for one RPC, in order: initial metadata (absent for trailers-only responses),
/// messages, then the status with trailing metadata.
public enum ClientResponsePart: Sendable {
    case metadata(Metadata)
    case message([UInt8])
    case status(Status, trailers: Metadata)
}

/// The client side of one RPC as a transport presents it.
public struct RPCClientStream: Sendable {
    public let outbound: RPCWriter<[UInt8]>
    /// Half-closes the request stream.
    public let finish: @Sendable () async throws -> Void
    public let inbound: RPCAsyncSequence<ClientResponsePart>

    public init(
        outbound: RPCWriter<[UInt8]>,
        finish: @escaping @Sendable () async throws -> Void,
        inbound: RPCAsyncSequence<ClientResponsePart>
    ) {
        self.outbound = outbound
        self.finish = finish
        self.inbound = inbound
    }
}

/// Carries RPCs to a server: HTTP/2, or in-process for tests.
public protocol ClientTransport: Sendable {
    /// Opens a stream for one RPC and runs `body` with it; the stream is cancelled when `body` returns or throws
    /// before the RPC has ended.
    func withStream<R: Sendable>(
        descriptor: MethodDescriptor,
        metadata: Metadata,
        options: CallOptions,
        _ body: @Sendable (RPCClientStream) async throws -> R
    ) async throws -> R
}

/// A single response and the metadata around it.
public struct ClientResponse<Message: Sendable>: Sendable {
    public var metadata: Metadata
    public var message: Message
    public var trailingMetadata: Metadata
}

/// A stream of responses. Iterating `messages` throws an ``RPCError`` if the RPC ends with a status other
/// than OK; `trailingMetadata` is filled once the stream has ended.
public struct StreamingClientResponse<Message: Sendable>: Sendable {
    public let metadata: Metadata
    public let messages: RPCAsyncSequence<Message>
    private let trailers: TrailersBox

    public var trailingMetadata: Metadata { trailers.value.withLock { $0 } }

    init(metadata: Metadata, messages: RPCAsyncSequence<Message>, trailers: TrailersBox) {
        self.metadata = metadata
        self.messages = messages
        self.trailers = trailers
    }
}

final class TrailersBox: Sendable {
    let value = Mutex(Metadata())
}

/// Runs typed RPCs over a transport; generated client stubs call it.
public struct RPCClient: Sendable {
    public let transport: any ClientTransport

    /// `interceptors` run around every call, the first outermost.
    public init(transport: any ClientTransport, interceptors: [any ClientInterceptor] = []) {
        self.transport = interceptors.isEmpty ? transport : InterceptedClientTransport(transport, interceptors: interceptors)
    }

    public func unary<Request: ProtoMessage, Response: ProtoMessage>(
        request: Request,
        descriptor: MethodDescriptor,
        metadata: Metadata = [:],
        options: CallOptions = .defaults
    ) async throws -> ClientResponse<Response> {
        try await serverStreaming(request: request, descriptor: descriptor, metadata: metadata, options: options) {
            try await Self.single($0)
        }
    }

    public func clientStreaming<Request: ProtoMessage, Response: ProtoMessage>(
        descriptor: MethodDescriptor,
        metadata: Metadata = [:],
        options: CallOptions = .defaults,
        requests: @escaping @Sendable (RPCWriter<Request>) async throws -> Void
    ) async throws -> ClientResponse<Response> {
        try await bidirectionalStreaming(
            descriptor: descriptor, metadata: metadata, options: options, requests: requests
        ) { try await Self.single($0) }
    }

    public func serverStreaming<Request: ProtoMessage, Response: ProtoMessage, Result: Sendable>(
        request: Request,
        descriptor: MethodDescriptor,
        metadata: Metadata = [:],
        options: CallOptions = .defaults,
        onResponse: @escaping @Sendable (StreamingClientResponse<Response>) async throws -> Result
    ) async throws -> Result {
        try await bidirectionalStreaming(
            descriptor: descriptor, metadata: metadata, options: options,
            requests: { try await $0.write(request) }, onResponse: onResponse
        )
    }

    public func bidirectionalStreaming<Request: ProtoMessage, Response: ProtoMessage, Result: Sendable>(
        descriptor: MethodDescriptor,
        metadata: Metadata = [:],
        options: CallOptions = .defaults,
        requests: @escaping @Sendable (RPCWriter<Request>) async throws -> Void,
        onResponse: @escaping @Sendable (StreamingClientResponse<Response>) async throws -> Result
    ) async throws -> Result {
        try await call(
            descriptor: descriptor, metadata: metadata, options: options,
            requests: { try await requests($0.map { try $0.serializedBytes() }) },
            decode: { bytes in
                do {
                    return try Response(serializedBytes: bytes)
                } catch {
                    throw RPCError(code: .internal, message: "failed to parse response: \(error)", cause: error)
                }
            },
            onResponse: onResponse
        )
    }

    /// Any method with its messages as encoded bytes, for clients that learn a server's types at run time
    /// (from server reflection). Requests and responses are passed on as they are.
    public func bidirectionalStreaming<Result: Sendable>(
        descriptor: MethodDescriptor,
        metadata: Metadata = [:],
        options: CallOptions = .defaults,
        encodedRequests requests: @escaping @Sendable (RPCWriter<[UInt8]>) async throws -> Void,
        onResponse: @escaping @Sendable (StreamingClientResponse<[UInt8]>) async throws -> Result
    ) async throws -> Result {
        try await call(descriptor: descriptor, metadata: metadata, options: options, requests: requests, decode: { $0 }, onResponse: onResponse)
    }

    private func call<Response: Sendable, Result: Sendable>(
        descriptor: MethodDescriptor,
        metadata: Metadata,
        options: CallOptions,
        requests: @escaping @Sendable (RPCWriter<[UInt8]>) async throws -> Void,
        decode: @escaping @Sendable ([UInt8]) throws -> Response,
        onResponse: @escaping @Sendable (StreamingClientResponse<Response>) async throws -> Result
    ) async throws -> Result {
        try await transport.withStream(descriptor: descriptor, metadata: metadata, options: options) { stream in
            // Requests and responses run side by side. A failing request producer fails the call (and the
            // transport cancels the stream); once the response side is done, the request side is cancelled
            // and its outcome no longer matters.
            try await withThrowingTaskGroup(of: Result?.self) { group in
                group.addTask {
                    try await requests(stream.outbound)
                    try await stream.finish()
                    return nil
                }
                group.addTask {
                    let response = try await Self.response(stream.inbound, decode: decode)
                    return try await onResponse(response)
                }
                var result: Result?
                while let next = await group.nextResult() {
                    switch next {
                    case .success(let value?):
                        result = value
                        group.cancelAll()
                    case .success(nil):
                        continue
                    case .failure(let error as RPCError) where error.cause is CallEndedError:
                        continue  // the server ended the call: the response side has its status
                    case .failure(let error):
                        if result == nil { throw error }
                    }
                }
                return result!
            }
        }
    }

    /// Reads initial metadata (or a trailers-only status) and wraps the rest as a message sequence.
    private static func response<Response: Sendable>(
        _ inbound: RPCAsyncSequence<ClientResponsePart>, decode: @escaping @Sendable ([UInt8]) throws -> Response
    ) async throws -> StreamingClientResponse<Response> {
        var parts = inbound.makeAsyncIterator()
        let trailers = TrailersBox()
        switch try await parts.next() {
        case .metadata(let metadata):
            let messages = ResponseMessages(parts: parts, trailers: trailers, decode: decode)
            return StreamingClientResponse(metadata: metadata, messages: RPCAsyncSequence(wrapping: messages), trailers: trailers)
        case .status(let status, let trailing):
            guard status.code == .ok else {
                throw RPCError(code: status.code, message: status.message, metadata: trailing)
            }
            trailers.value.withLock { $0 = trailing }
            return StreamingClientResponse(metadata: [:], messages: .elements([]), trailers: trailers)
        case .message:
            throw RPCError(code: .internal, message: "protocol error: a message arrived before the response headers")
        case nil:
            throw RPCError(code: .internal, message: "protocol error: the stream ended without a status")
        }
    }

    /// Exactly one response message for unary and client-streaming methods.
    private static func single<Response: Sendable>(_ response: StreamingClientResponse<Response>) async throws -> ClientResponse<Response> {
        var messages = response.messages.makeAsyncIterator()
        guard let message = try await messages.next() else {
            throw RPCError(code: .internal, message: "protocol error: the server sent no response message")
        }
        guard try await messages.next() == nil else {
            throw RPCError(code: .internal, message: "protocol error: the server sent more than one response message")
        }
        return ClientResponse(metadata: response.metadata, message: message, trailingMetadata: response.trailingMetadata)
    }
}

/// Response messages until the status; a status other than OK is thrown as an ``RPCError``.
private struct ResponseMessages<Message: Sendable>: AsyncSequence, @unchecked Sendable {
    // The iterator is used by one consumer only: `RPCAsyncSequence` makes it once per iteration.
    let parts: RPCAsyncSequence<ClientResponsePart>.AsyncIterator
    let trailers: TrailersBox
    let decode: @Sendable ([UInt8]) throws -> Message

    func makeAsyncIterator() -> AsyncIterator { AsyncIterator(parts: parts, trailers: trailers, decode: decode) }

    struct AsyncIterator: AsyncIteratorProtocol {
        var parts: RPCAsyncSequence<ClientResponsePart>.AsyncIterator
        let trailers: TrailersBox
        let decode: @Sendable ([UInt8]) throws -> Message
        var done = false

        mutating func next() async throws -> Message? {
            guard !done else { return nil }
            switch try await parts.next() {
            case .message(let bytes):
                return try decode(bytes)
            case .status(let status, let trailing):
                done = true
                trailers.value.withLock { $0 = trailing }
                guard status.code == .ok else {
                    throw RPCError(code: status.code, message: status.message, metadata: trailing)
                }
                return nil
            case .metadata:
                throw RPCError(code: .internal, message: "protocol error: response headers arrived twice")
            case nil:
                throw RPCError(code: .internal, message: "protocol error: the stream ended without a status")
            }
        }
    }
}
