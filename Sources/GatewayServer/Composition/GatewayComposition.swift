import Foundation
import GatewayApplication
import GatewayProtos
import Logging
import OpenSSLTLS
import OpenSSLCrypto
import RPCCore
import RPCHTTP2
import StandardProtos
import StandardServices

/// Everything the gateway process is configured with.
public struct GatewayConfiguration: Sendable {
    public var host: String
    public var port: Int
    public var dataDirectory: URL
    public var auth: AuthSettings
    /// How long download links last when the caller asks for no lifetime.
    public var defaultLinkLifetimeSeconds: Int64
    public var limits: GatewaySettings.Limits
    /// TLS for the listener; nil: h2c.
    public var tls: TLSServerCredentials?

    public init(
        host: String, port: Int, dataDirectory: URL, auth: AuthSettings, defaultLinkLifetimeSeconds: Int64 = 15 * 60,
        limits: GatewaySettings.Limits = .init()
    ) {
        self.host = host
        self.port = port
        self.dataDirectory = dataDirectory
        self.auth = auth
        self.defaultLinkLifetimeSeconds = defaultLinkLifetimeSeconds
        self.limits = limits
    }

    /// The listener's settings: the address and the limits.
    var server: GRPCServerConfiguration {
        .defaults { server in
            server.host = host
            server.port = port
            server.tls = tls
            server.maxConnections = limits.maxConnections
            server.maxConnectionsPerAddress = limits.maxConnectionsPerAddress
            server.maxConcurrentStreams = UInt32(limits.maxConcurrentStreams)
            server.maxReceiveMessageSize = limits.maxReceiveMessageBytes
            server.maxConnectionBufferedBytes = limits.maxConnectionBufferBytes
            server.maxConnectionSendBufferedBytes = limits.maxConnectionSendBufferBytes
            server.maxHeaderListSize = limits.maxHeaderListBytes
            server.handshakeTimeout = .seconds(limits.handshakeTimeoutSeconds)
            server.maxConnectionIdle = limits.maxConnectionIdleSeconds > 0 ? .seconds(limits.maxConnectionIdleSeconds) : nil
            server.maxConnectionAge = limits.maxConnectionAgeSeconds > 0 ? .seconds(limits.maxConnectionAgeSeconds) : nil
            server.maxConnectionAgeGrace = .seconds(limits.maxConnectionAgeGraceSeconds)
            server.maxCallDuration = limits.maxCallSeconds > 0 ? .seconds(limits.maxCallSeconds) : nil
            server.keepalive.time = .seconds(limits.keepaliveTimeSeconds)
            server.keepalive.timeout = .seconds(limits.keepaliveTimeoutSeconds)
        }
    }

    public static func isLoopback(_ host: String) -> Bool {
        host == "localhost" || host == "::1" || host.hasPrefix("127.")
    }

    /// What the gateway logs at start (nothing secret).
    public var summary: Logger.Metadata {
        [
            "listen": "\(tls == nil ? "h2c" : "tls")://\(host):\(port)",
            "data_dir": "\(dataDirectory.path)",
            "auth": auth.projectID.map { "firebase project \($0)" }.map { .string($0) } ?? "local mode (project \"local\", loopback only)",
            "auth.leeway_seconds": "\(auth.leewaySeconds)",
            "auth.tenants": "\(auth.tenants.map { $0.sorted().joined(separator: ",") } ?? "any")",
            "auth.check_revoked": "\(auth.checkRevoked)",
        ]
    }
}

/// The storage adapters the use cases run on, and how to close them.
public struct GatewayStorage: Sendable {
    public var users: any UserRepository
    public var sessions: any SessionRepository
    public var events: any EventStore
    public var files: any FileRepository
    public var blobs: any BlobStore
    public var outboxCursors: any OutboxCursors
    /// The secret page tokens and download links are signed with (purpose keys are derived from it): the same
    /// for every gateway sharing the storage, so a page token from one works on another.
    public var masterSecret: [UInt8]
    /// Flushes and closes; called once after the server has stopped.
    public var close: @Sendable () async throws -> Void

    public init(
        users: any UserRepository, sessions: any SessionRepository, events: any EventStore, files: any FileRepository,
        blobs: any BlobStore, outboxCursors: any OutboxCursors, masterSecret: [UInt8], close: @escaping @Sendable () async throws -> Void
    ) {
        self.users = users
        self.sessions = sessions
        self.events = events
        self.files = files
        self.blobs = blobs
        self.outboxCursors = outboxCursors
        self.masterSecret = masterSecret
        self.close = close
    }

    /// The key for one purpose (`page-tokens`, `download-links`), derived from the master secret so that no
    /// two purposes share a key.
    func key(for purpose: String) -> [UInt8] {
        Digest.hmacSHA256(key: masterSecret, message: Array(purpose.utf8))
    }
}

/// The composition root: adapters, use cases and services wired into one server.
public struct GatewayComposition: Sendable {
    public let authentication: Authentication
    public let server: GRPCServer
    public let health: HealthService
    /// The file use cases (the orphan sweep runs on them at start).
    public let files: FileLibrary

    /// The services the gateway exists for; every one of their methods needs a token (see ``AccessPolicy``).
    public static let productServices = [
        Gateway_User_V1_UserService.descriptor.fullyQualifiedName, Gateway_File_V1_FileService.descriptor.fullyQualifiedName,
        Gateway_Event_V1_EventService.descriptor.fullyQualifiedName,
    ]

    /// `metrics` are the per-RPC metrics (made by the bootstrapped swift-metrics factory unless given).
    public init(
        configuration: GatewayConfiguration, storage: GatewayStorage, http: any HTTPClient, clock: any WallClock,
        logger: Logger, metrics: RPCServerMetrics? = nil
    ) throws {
        authentication = try Authentication(
            settings: configuration.auth, dataDirectory: configuration.dataDirectory, http: http, clock: clock
        )
        let ids = MonotonicIDGenerator(clock: clock)
        let pageTokens = HMACTokenSealer(key: storage.key(for: "page-tokens"))
        let accounts = UserAccounts(
            users: storage.users, sessions: storage.sessions, clock: clock, ids: ids, pageTokens: pageTokens,
            domainEvents: ProtobufDomainEvents()
        )
        let events = EventLog(store: storage.events, clock: clock, ids: ids, pageTokens: pageTokens)
        let library = FileLibrary(
            files: storage.files, blobs: storage.blobs, clock: clock, ids: ids, pageTokens: pageTokens,
            linkSigner: HMACSigner(key: storage.key(for: "download-links")), domainEvents: ProtobufDomainEvents(),
            settings: .defaults {
                $0.defaultLinkLifetimeSeconds = configuration.defaultLinkLifetimeSeconds
                $0.maximumFileSize = configuration.limits.maxUploadBytes
            }
        )
        files = library
        let health = HealthService()
        // Each service by name too: probes and load balancers may ask for one (grpc/grpc doc/health-checking.md).
        for service in Self.productServices { health.setStatus(.serving, forService: service) }
        self.health = health
        let reflection = ReflectionService(
            services: ["grpc.health.v1.Health"] + Self.productServices,
            files: StandardProtosDescriptors.files + GatewayProtosDescriptors.files
        )
        var policy = AccessPolicy.gateway
        policy.certificateServices = configuration.auth.certificateServices ?? []
        let auth = AuthInterceptor(verifier: authentication.verifier, policy: policy)
        let services: [any RPCService] = [
            health, UserServiceImplementation(accounts: accounts), FileServiceImplementation(library: library),
            EventServiceImplementation(log: events, subscriberStall: .seconds(configuration.limits.subscriberStallSeconds)),
        ] + reflection.rpcServices
        let metrics = metrics ?? RPCServerMetrics(methods: RPCRouter(services: services).methods)
        server = GRPCServer(
            services: services,
            interceptors: [
                // Outermost, so its log line and metrics cover refused calls too; the caller's uid reaches it through
                // CallerObservationInterceptor, right after authentication.
                ScopedServerInterceptor(RPCObservationInterceptor(logger: logger, metrics: metrics)),
                ScopedServerInterceptor(auth),
                ScopedServerInterceptor(CallerObservationInterceptor(), scope: .services(Set(Self.productServices))),
                ScopedServerInterceptor(RateLimitInterceptor(settings: configuration.limits.rateLimits), scope: .services(Set(Self.productServices))),
                ScopedServerInterceptor(DomainStatusInterceptor(logger: logger), scope: .services(Set(Self.productServices))),
            ],
            plainHTTP: SignedDownloads(library: library),
            // Calls refused before the interceptors (unknown methods, bad headers): the same line and metrics.
            refusals: RefusedCallReporter(logger: logger, metrics: metrics),
            configuration: configuration.server,
            logger: logger,
            beforeShutdown: { health.shutDown() }
        )
    }
}
