import Logging
import NIOCore
import NIOPosix
import OpenSSLTLS
import RPCCore
import ServiceLifecycle
import Synchronization

/// A gRPC server over HTTP/2 (h2c with prior knowledge, or TLS with ALPN `h2`) for the services in a router.
///
/// Run it in a `ServiceGroup`: a graceful shutdown (SIGTERM/SIGINT) stops accepting connections, sends each
/// connection GOAWAY (2^31-1) and a PING, then GOAWAY with the last stream it will serve, lets in-flight RPCs
/// finish, and closes what is left after ``GRPCServerConfiguration/shutdownGracePeriod``. `run` returns only
/// once every handler has returned (a handler that ignores its cancellation gets one more grace period after
/// the last connection closed), so what the handlers use can be closed after it.
public final class GRPCServer: Service, Sendable {
    private let router: RPCRouter
    private let plainHTTP: (any PlainHTTPHandler)?
    private let refusals: (any RefusedCallObserver)?
    private let configuration: GRPCServerConfiguration
    private let logger: Logger
    private let group: any EventLoopGroup
    private let beforeShutdown: (@Sendable () -> Void)?
    private let state = Mutex(State())
    private let handlers = RunningHandlers()

    private struct State {
        var serverChannel: (any Channel)?
        var connections: [ObjectIdentifier: any Channel] = [:]
        /// Open connections by the peer's IP address.
        var connectionsByAddress: [String: Int] = [:]
        var shuttingDown = false
        var listening = Listening.pending([])
    }

    private enum Listening {
        case pending([CheckedContinuation<SocketAddress, any Error>])
        case bound(SocketAddress)
        case failed
    }

    /// `interceptors` run around every RPC in their scope, the first outermost; `plainHTTP` answers `GET` and
    /// `HEAD` requests on the same listener; `refusals` hears of requests answered before any handler or
    /// interceptor ran (an unknown method, invalid headers); `beforeShutdown` runs when a graceful shutdown
    /// begins (mark health NOT_SERVING there, so load balancers drain this server first).
    public init(
        services: [any RPCService],
        interceptors: [ScopedServerInterceptor] = [],
        plainHTTP: (any PlainHTTPHandler)? = nil,
        refusals: (any RefusedCallObserver)? = nil,
        configuration: GRPCServerConfiguration = .defaults,
        logger: Logger = Logger(label: "gateway.grpc.server"),
        eventLoopGroup: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton,
        beforeShutdown: (@Sendable () -> Void)? = nil
    ) {
        router = RPCRouter(services: services).intercepted(by: interceptors)
        self.plainHTTP = plainHTTP
        self.refusals = refusals
        self.beforeShutdown = beforeShutdown
        self.configuration = configuration
        self.logger = logger
        group = eventLoopGroup
    }

    /// The address the server listens on, once it does (useful with port 0).
    public var listeningAddress: SocketAddress {
        get async throws {
            try await withCheckedThrowingContinuation { continuation in
                let known = state.withLock { s -> Listening? in
                    guard case .pending(var waiting) = s.listening else { return s.listening }
                    waiting.append(continuation)
                    s.listening = .pending(waiting)
                    return nil
                }
                switch known {
                case .bound(let address): continuation.resume(returning: address)
                case .failed: continuation.resume(throwing: RPCError(code: .unavailable, message: "the server stopped before it listened"))
                case .pending, nil: break
                }
            }
        }
    }

    private func settleListening(_ address: SocketAddress?) {
        let waiting = state.withLock { s -> [CheckedContinuation<SocketAddress, any Error>] in
            guard case .pending(let waiting) = s.listening else { return [] }
            s.listening = address.map { .bound($0) } ?? .failed
            return waiting
        }
        for continuation in waiting {
            if let address {
                continuation.resume(returning: address)
            } else {
                continuation.resume(throwing: RPCError(code: .unavailable, message: "the server stopped before it listened"))
            }
        }
    }

    public func run() async throws {
        let router = self.router
        let plainHTTP = self.plainHTTP
        let configuration = self.configuration
        let logger = self.logger
        let handlers = self.handlers
        let channel: any Channel
        do {
            channel = try await bind(router: router, plainHTTP: plainHTTP, handlers: handlers)
        } catch {
            settleListening(nil)
            throw error
        }
        state.withLock { $0.serverChannel = channel }
        if let address = channel.localAddress {
            logger.info("listening", metadata: ["net.address": "\(address)"])
        }
        settleListening(channel.localAddress)
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
            // Every call is over on the wire and its handler cancelled; wait for the handlers to return.
            let deadline = ContinuousClock.now + configuration.shutdownGracePeriod
            while handlers.count > 0, ContinuousClock.now < deadline {
                try? await Task.sleep(for: .milliseconds(10))
            }
            if handlers.count > 0 {
                logger.warning("handlers still running after the grace period", metadata: ["rpc.handlers": "\(handlers.count)"])
            }
        } onGracefulShutdown: {
            self.beginGracefulShutdown()
        }
    }

    private func bind(router: RPCRouter, plainHTTP: (any PlainHTTPHandler)?, handlers: RunningHandlers) async throws -> any Channel {
        let configuration = self.configuration
        let logger = self.logger
        let refusals = self.refusals
        return try await ServerBootstrap(group: group)
            .serverChannelOption(.backlog, value: 256)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelOption(.socketOption(.tcp_nodelay), value: 1)
            .childChannelOption(.maxMessagesPerRead, value: 16)
            .childChannelInitializer { [weak self] channel in
                self?.track(channel)
                return channel.eventLoop.makeCompletedFuture {
                    if let tls = configuration.tls {
                        try channel.pipeline.syncOperations.addHandler(
                            TLSHandler(context: tls.current, onHandshake: tls.onHandshake)
                        )
                    }
                    try channel.pipeline.syncOperations.addHandler(
                        ServerConnectionHandler(
                            router: router, plainHTTP: plainHTTP, refusals: refusals, configuration: configuration,
                            logger: logger, handlers: handlers
                        )
                    )
                }
            }
            .bind(host: configuration.host, port: configuration.port)
            .get()
    }

    private func track(_ channel: any Channel) {
        let id = ObjectIdentifier(channel)
        let address = channel.remoteAddress?.ipAddress ?? ""
        let (maxTotal, maxPerAddress) = (configuration.maxConnections, configuration.maxConnectionsPerAddress)
        let refusal = state.withLock { s -> String? in
            guard !s.shuttingDown else { return "shutting down" }
            guard s.connections.count < maxTotal else { return "\(maxTotal) connections are open" }
            guard s.connectionsByAddress[address, default: 0] < maxPerAddress else {
                return "\(maxPerAddress) connections from this address are open"
            }
            s.connections[id] = channel
            s.connectionsByAddress[address, default: 0] += 1
            return nil
        }
        if let refusal {
            logger.debug("connection refused", metadata: ["net.peer.ip": "\(address)", "reason": "\(refusal)"])
            channel.close(promise: nil)
            return
        }
        channel.closeFuture.whenComplete { [weak self] _ in
            self?.state.withLock { s in
                s.connections.removeValue(forKey: id)
                let left = s.connectionsByAddress[address, default: 1] - 1
                s.connectionsByAddress[address] = left > 0 ? left : nil
            }
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

/// How many handler tasks are running, across the server's connections.
final class RunningHandlers: Sendable {
    private let running = Atomic<Int>(0)
    private let everStarted = Atomic<Int>(0)

    var count: Int { running.load(ordering: .acquiring) }
    /// Handler tasks started so far.
    var total: Int { everStarted.load(ordering: .relaxed) }

    func started() {
        running.add(1, ordering: .relaxed)
        everStarted.add(1, ordering: .relaxed)
    }

    func finished() { running.subtract(1, ordering: .releasing) }
}

/// Hears of requests the transport answered before any handler or interceptor ran: an unknown service or
/// method, invalid request headers (content-type, `grpc-timeout`, `grpc-encoding`, metadata), a request
/// message refused in the same read as the headers (its handler had not started yet). Called on an event
/// loop: it must not block.
public protocol RefusedCallObserver: Sendable {
    /// `path` as the client sent it (`/service/method`, possibly malformed or long); `peer` as in
    /// ``ServerContext/peer``.
    func refused(path: String, status: Status, peer: String)
}
