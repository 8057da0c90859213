import Logging
import NIOCore
import NIOHTTP1
import NIOPosix
import Prometheus
import ServiceLifecycle
import Synchronization

/// Serves `GET /metrics` (Prometheus' text exposition format, from a `PrometheusCollectorRegistry`) on a plain
/// HTTP/1.1 listener of its own, apart from the gRPC port. Run it in the same `ServiceGroup` as the server: a
/// graceful shutdown closes the listener and its connections.
public final class MetricsEndpoint: Service, Sendable {
    private let host: String
    private let port: Int
    private let registry: PrometheusCollectorRegistry
    private let logger: Logger
    private let group: any EventLoopGroup
    private let state = Mutex(State())
    private let bound = AsyncStream<SocketAddress>.makeStream()

    private struct State {
        var listener: (any Channel)?
        var connections: [ObjectIdentifier: any Channel] = [:]
        var address: SocketAddress?
        var closing = false
    }

    public init(
        host: String, port: Int, registry: PrometheusCollectorRegistry, logger: Logger,
        eventLoopGroup: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton
    ) {
        self.host = host
        self.port = port
        self.registry = registry
        self.logger = logger
        group = eventLoopGroup
    }

    /// The address the endpoint listens on, once it does (useful with port 0).
    public var listeningAddress: SocketAddress {
        get async throws {
            for await address in bound.stream { return address }
            if let address = state.withLock({ $0.address }) { return address }
            throw MetricsEndpointError(message: "the metrics endpoint stopped before it listened")
        }
    }

    public func run() async throws {
        let registry = self.registry
        let channel = try await ServerBootstrap(group: group)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelInitializer { [weak self] channel in
                self?.track(channel)
                return channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.configureHTTPServerPipeline(withErrorHandling: true)
                    try channel.pipeline.syncOperations.addHandler(MetricsRequestHandler(registry: registry))
                }
            }
            .bind(host: host, port: port)
            .get()
        let address = channel.localAddress
        let closeNow = state.withLock { state in
            state.listener = channel
            state.address = address
            return state.closing
        }
        if let address {
            logger.info("metrics listening", metadata: ["net.address": "\(address)", "http.route": "/metrics"])
            bound.continuation.yield(address)
        }
        bound.continuation.finish()
        if closeNow { close() }
        try await withGracefulShutdownHandler {
            try await withTaskCancellationHandler {
                try await channel.closeFuture.get()
            } onCancel: {
                self.close()
            }
        } onGracefulShutdown: {
            self.close()
        }
    }

    private func track(_ channel: any Channel) {
        let id = ObjectIdentifier(channel)
        let accepted = state.withLock { state in
            guard !state.closing else { return false }
            state.connections[id] = channel
            return true
        }
        guard accepted else {
            channel.close(promise: nil)
            return
        }
        channel.closeFuture.whenComplete { [weak self] _ in
            _ = self?.state.withLock { $0.connections.removeValue(forKey: id) }
        }
    }

    /// Closes the listener and every open connection (a scrape is short; nothing is worth waiting for).
    private func close() {
        let (listener, connections) = state.withLock { state in
            state.closing = true
            return (state.listener, Array(state.connections.values))
        }
        listener?.close(promise: nil)
        for connection in connections { connection.close(promise: nil) }
    }
}

public struct MetricsEndpointError: Error, CustomStringConvertible {
    public var message: String
    public var description: String { message }
}

/// Answers one HTTP/1.1 request at a time (the pipeline handler queues pipelined ones): `/metrics` for `GET` and
/// `HEAD`, 405 for other methods there, 404 elsewhere.
final class MetricsRequestHandler: ChannelInboundHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias OutboundOut = HTTPServerResponsePart

    static let contentType = "text/plain; version=0.0.4; charset=utf-8"

    private let registry: PrometheusCollectorRegistry
    private var head: HTTPRequestHead?

    init(registry: PrometheusCollectorRegistry) {
        self.registry = registry
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case .head(let head):
            self.head = head
        case .body:
            break
        case .end:
            guard let head else { return }
            self.head = nil
            respond(to: head, context: context)
        }
    }

    private func respond(to request: HTTPRequestHead, context: ChannelHandlerContext) {
        let path = request.uri.split(separator: "?", maxSplits: 1, omittingEmptySubsequences: false).first.map(String.init) ?? ""
        let status: HTTPResponseStatus
        var headers = HTTPHeaders()
        var body: [UInt8]
        if path != "/metrics" {
            status = .notFound
            headers.add(name: "content-type", value: "text/plain; charset=utf-8")
            body = Array("not found; metrics are at /metrics\n".utf8)
        } else if request.method != .GET && request.method != .HEAD {
            status = .methodNotAllowed
            headers.add(name: "allow", value: "GET, HEAD")
            headers.add(name: "content-type", value: "text/plain; charset=utf-8")
            body = Array("only GET and HEAD\n".utf8)
        } else {
            status = .ok
            headers.add(name: "content-type", value: Self.contentType)
            body = registry.emitToBuffer()
        }
        headers.add(name: "content-length", value: "\(body.count)")
        if request.method == .HEAD { body = [] }
        let keepAlive = request.isKeepAlive
        if !keepAlive { headers.add(name: "connection", value: "close") }
        context.write(wrapOutboundOut(.head(HTTPResponseHead(version: request.version, status: status, headers: headers))), promise: nil)
        if !body.isEmpty {
            context.write(wrapOutboundOut(.body(.byteBuffer(context.channel.allocator.buffer(bytes: body)))), promise: nil)
        }
        let done = context.writeAndFlush(wrapOutboundOut(.end(nil)))
        if !keepAlive {
            let channel = context.channel
            done.whenComplete { _ in channel.close(promise: nil) }
        }
    }
}
