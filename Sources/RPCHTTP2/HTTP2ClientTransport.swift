import NIOCore
import NIOPosix
import OpenSSLTLS
import RPCCore
import Synchronization

/// A gRPC client transport over HTTP/2 (h2c with prior knowledge): one connection, opened on first use and
/// again after it closes or receives GOAWAY, with every call multiplexed on it.
public final class HTTP2ClientTransport: ClientTransport, Sendable {
    public let host: String
    public let port: Int
    private let configuration: GRPCClientConfiguration
    private let group: any EventLoopGroup
    private let state = Mutex<Connection?>(nil)

    /// A connection, or its connect in progress.
    private struct Connection: Sendable {
        let id: Int
        let future: EventLoopFuture<Established>
    }

    private struct Established: Sendable {
        let channel: any Channel
        let handler: NIOLoopBound<ClientConnectionHandler>
    }

    private static let nextID = Atomic<Int>(0)

    public init(
        host: String,
        port: Int,
        configuration: GRPCClientConfiguration = .defaults,
        eventLoopGroup: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton
    ) {
        self.host = host
        self.port = port
        self.configuration = configuration
        group = eventLoopGroup
    }

    /// Closes the connection (open calls end with UNAVAILABLE).
    public func close() async {
        let connection = state.withLock { s in
            defer { s = nil }
            return s
        }
        if let established = try? await connection?.future.get() {
            try? await established.channel.close()
        }
    }

    private func connection() -> Connection {
        state.withLock { s in
            if let current = s { return current }
            let id = Self.nextID.wrappingAdd(1, ordering: .relaxed).newValue
            let (configuration, host) = (self.configuration, self.host)
            let owner = WeakReference(self)
            let future = ClientBootstrap(group: group)
                .channelOption(.socketOption(.tcp_nodelay), value: 1)
                .connectTimeout(TimeAmount(configuration.connectTimeout))
                .channelInitializer { channel in
                    channel.eventLoop.makeCompletedFuture {
                        let handler = ClientConnectionHandler(configuration: configuration) {
                            owner.value?.forget(connection: id)
                        }
                        if let tls = configuration.tls {
                            try channel.pipeline.syncOperations.addHandler(
                                TLSHandler(context: tls, serverName: configuration.tlsServerName ?? host)
                            )
                        }
                        try channel.pipeline.syncOperations.addHandler(handler)
                    }
                }
                .connect(host: host, port: port)
                .flatMap { channel in
                    // A TLS connection is established when its handshake is: a failed one fails the connect, and
                    // one that does not end within the connect timeout (a peer that accepts TCP and never
                    // answers) is closed, which fails it too.
                    let handshake = try? channel.pipeline.syncOperations.handler(type: TLSHandler.self).handshakeCompleted
                    if let handshake {
                        let timeout = channel.eventLoop.scheduleTask(in: TimeAmount(configuration.connectTimeout)) {
                            channel.close(promise: nil)
                        }
                        handshake.whenComplete { _ in timeout.cancel() }
                    }
                    let ready = handshake?.map { _ in () } ?? channel.eventLoop.makeSucceededVoidFuture()
                    return ready.flatMapThrowing {
                        let handler = try channel.pipeline.syncOperations.handler(type: ClientConnectionHandler.self)
                        return Established(channel: channel, handler: NIOLoopBound(handler, eventLoop: channel.eventLoop))
                    }
                }
            future.whenFailure { _ in owner.value?.forget(connection: id) }
            let connection = Connection(id: id, future: future)
            s = connection
            return connection
        }
    }

    /// The connection is closing: the next call opens a new one.
    private func forget(connection id: Int) {
        state.withLock { s in
            if s?.id == id { s = nil }
        }
    }

    public func withStream<R: Sendable>(
        descriptor: MethodDescriptor,
        metadata: Metadata,
        options: CallOptions,
        _ body: @Sendable (RPCClientStream) async throws -> R
    ) async throws -> R {
        let established: Established
        do {
            established = try await connection().future.get()
        } catch {
            // A failed TLS handshake says why (an untrusted certificate, a name that does not match, no h2).
            let reason = (error as? TLSError).map { ": \($0)" } ?? ""
            throw RPCError(code: .unavailable, message: "cannot connect to \(host):\(port)\(reason)", cause: error)
        }
        let loop = established.channel.eventLoop
        let handler = established.handler
        let gate = OutboundGate(highWater: configuration.streamSendBufferSize, lowWater: configuration.streamSendBufferSize / 4)
        let encoding = options.compression.flatMap { MessageEncoding(rawValue: $0.rawValue) }
        let headers = requestHeaders(descriptor, metadata: metadata, options: options, encoding: encoding)

        // The stream id and window callback exist only once the event loop opened the stream.
        let streamID = Atomic<Int32>(0)
        let inbox = StreamInbox<ClientResponsePart>(batch: Int(configuration.streamWindowSize / 4)) {
            loop.execute { handler.value.giveBackWindow(stream: streamID.load(ordering: .relaxed)) }
        }
        let id = try await loop.submit {
            try handler.value.open(headers, stream: ClientStream(inbox: inbox, gate: gate, timeout: options.timeout))
        }.get()
        streamID.store(id, ordering: .relaxed)

        let outbound = RPCWriter<[UInt8]> { message in
            let framed = MessageFramer.frame(message, encoding: encoding)
            if try gate.push(framed) { loop.execute { handler.value.takePending(stream: id) } }
            try await gate.waitForRoom()
        }
        let stream = RPCClientStream(
            outbound: outbound,
            finish: { loop.execute { handler.value.endRequest(stream: id) } },
            inbound: RPCAsyncSequence { try await inbox.next() }
        )
        // Whatever way `body` ends, a stream still open is cancelled (RST_STREAM CANCEL).
        defer {
            loop.execute {
                handler.value.cancel(stream: id, status: Status(code: .cancelled, message: "the call was cancelled"))
            }
        }
        return try await withTaskCancellationHandler {
            try await body(stream)
        } onCancel: {
            loop.execute {
                handler.value.cancel(stream: id, status: Status(code: .cancelled, message: "the call was cancelled"))
            }
        }
    }

    private func requestHeaders(
        _ descriptor: MethodDescriptor, metadata: Metadata, options: CallOptions, encoding: MessageEncoding?
    ) -> [(String, String)] {
        var headers = [
            (":method", "POST"), (":scheme", configuration.tls == nil ? "http" : "https"), (":path", descriptor.path), (":authority", "\(host):\(port)"),
        ]
        if let timeout = options.timeout { headers.append(("grpc-timeout", GRPCTimeout.format(timeout))) }
        headers += [
            ("content-type", "application/grpc"), ("te", "trailers"), ("user-agent", configuration.userAgent),
            ("grpc-accept-encoding", MessageEncoding.acceptHeader),
        ]
        if let encoding { headers.append(("grpc-encoding", encoding.rawValue)) }
        return headers + MetadataCoding.headers(for: metadata)
    }
}

/// Lets connection callbacks reach the transport without keeping it alive.
private final class WeakReference<T: AnyObject & Sendable>: Sendable {
    weak let value: T?

    init(_ value: T) {
        self.value = value
    }
}
