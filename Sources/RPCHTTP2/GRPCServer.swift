import Logging
import NIOCore
import NIOPosix
import RPCCore
import ServiceLifecycle
import Synchronization

/// A gRPC server over HTTP/2 (h2c with prior knowledge) for the services in a router.
///
/// Run it in a `ServiceGroup`: a graceful shutdown (SIGTERM/SIGINT) stops accepting connections, sends each
/// connection GOAWAY (2^31-1) and a PING, then GOAWAY with the last stream it will serve, lets in-flight RPCs
/// finish, and closes what is left after ``GRPCServerConfiguration/shutdownGracePeriod``.
public final class GRPCServer: Service, Sendable {
    private let router: RPCRouter
    private let plainHTTP: (any PlainHTTPHandler)?
    private let configuration: GRPCServerConfiguration
    private let logger: Logger
    private let group: any EventLoopGroup
    private let beforeShutdown: (@Sendable () -> Void)?
    private let state = Mutex(State())
    private let bound = AsyncStream<SocketAddress>.makeStream()

    private struct State {
        var serverChannel: (any Channel)?
        var connections: [ObjectIdentifier: any Channel] = [:]
        var shuttingDown = false
    }

    /// `interceptors` run around every RPC in their scope, the first outermost; `plainHTTP` answers `GET` and
    /// `HEAD` requests on the same listener; `beforeShutdown` runs when a graceful shutdown begins (mark health
    /// NOT_SERVING there, so load balancers drain this server first).
    public init(
        services: [any RPCService],
        interceptors: [ScopedServerInterceptor] = [],
        plainHTTP: (any PlainHTTPHandler)? = nil,
        configuration: GRPCServerConfiguration = .defaults,
        logger: Logger = Logger(label: "gateway.grpc.server"),
        eventLoopGroup: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton,
        beforeShutdown: (@Sendable () -> Void)? = nil
    ) {
        router = RPCRouter(services: services).intercepted(by: interceptors)
        self.plainHTTP = plainHTTP
        self.beforeShutdown = beforeShutdown
        self.configuration = configuration
        self.logger = logger
        group = eventLoopGroup
    }

    /// The address the server listens on, once it does (useful with port 0).
    public var listeningAddress: SocketAddress {
        get async throws {
            var addresses = bound.stream.makeAsyncIterator()
            guard let address = await addresses.next() else {
                throw RPCError(code: .unavailable, message: "the server stopped before it listened")
            }
            return address
        }
    }

    public func run() async throws {
        let router = self.router
        let plainHTTP = self.plainHTTP
        let configuration = self.configuration
        let logger = self.logger
        let channel = try await ServerBootstrap(group: group)
            .serverChannelOption(.backlog, value: 256)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelOption(.socketOption(.tcp_nodelay), value: 1)
            .childChannelOption(.maxMessagesPerRead, value: 16)
            .childChannelInitializer { [weak self] channel in
                self?.track(channel)
                return channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandler(
                        ServerConnectionHandler(router: router, plainHTTP: plainHTTP, configuration: configuration, logger: logger)
                    )
                }
            }
            .bind(host: configuration.host, port: configuration.port)
            .get()
        state.withLock { $0.serverChannel = channel }
        if let address = channel.localAddress {
            logger.info("listening", metadata: ["net.address": "\(address)"])
            bound.continuation.yield(address)
        }
        bound.continuation.finish()
        try await withGracefulShutdownHandler {
            try await withTaskCancellationHandler {
                try await channel.closeFuture.get()
            } onCancel: {
                channel.close(promise: nil)
            }
            // The listener is closed: wait for the connections to drain (each closes itself after its grace period).
            while !state.withLock({ $0.connections.isEmpty }) {
                try? await Task.sleep(for: .milliseconds(20))
                if Task.isCancelled { closeAllConnections() }
            }
        } onGracefulShutdown: {
            self.beginGracefulShutdown()
        }
    }

    private func track(_ channel: any Channel) {
        let id = ObjectIdentifier(channel)
        let accepted = state.withLock { s -> Bool in
            guard !s.shuttingDown else { return false }
            s.connections[id] = channel
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

    private func beginGracefulShutdown() {
        let (listener, connections) = state.withLock { s in
            s.shuttingDown = true
            return (s.serverChannel, Array(s.connections.values))
        }
        logger.info("shutting down gracefully", metadata: ["net.connections": "\(connections.count)"])
        beforeShutdown?()
        listener?.close(promise: nil)
        for connection in connections {
            connection.pipeline.fireUserInboundEventTriggered(GracefulShutdownEvent())
        }
    }

    private func closeAllConnections() {
        for connection in state.withLock({ Array($0.connections.values) }) {
            connection.close(promise: nil)
        }
    }
}
