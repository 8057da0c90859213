import Foundation
import GatewayApplication
import GatewayProtos
import Logging
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

    public init(host: String, port: Int, dataDirectory: URL, auth: AuthSettings) {
        self.host = host
        self.port = port
        self.dataDirectory = dataDirectory
        self.auth = auth
    }

    public static func isLoopback(_ host: String) -> Bool {
        host == "localhost" || host == "::1" || host.hasPrefix("127.")
    }

    /// What the gateway logs at start (nothing secret).
    public var summary: Logger.Metadata {
        [
            "listen": "\(host):\(port)",
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
    /// Flushes and closes; called once after the server has stopped.
    public var close: @Sendable () async throws -> Void

    public init(
        users: any UserRepository, sessions: any SessionRepository, events: any EventStore, files: any FileRepository,
        blobs: any BlobStore, close: @escaping @Sendable () async throws -> Void
    ) {
        self.users = users
        self.sessions = sessions
        self.events = events
        self.files = files
        self.blobs = blobs
        self.close = close
    }
}

/// The composition root: adapters, use cases and services wired into one server.
public struct GatewayComposition: Sendable {
    public let authentication: Authentication
    public let server: GRPCServer
    public let health: HealthService

    /// The services the gateway exists for; every one of their methods needs a token (see ``AccessPolicy``).
    public static let productServices = [
        Gateway_User_V1_UserService.descriptor.fullyQualifiedName, Gateway_File_V1_FileService.descriptor.fullyQualifiedName,
        Gateway_Event_V1_EventService.descriptor.fullyQualifiedName,
    ]

    /// `metrics` are the per-RPC metrics (made by the bootstrapped swift-metrics factory unless given).
    public init(
        configuration: GatewayConfiguration, storage: GatewayStorage, http: any HTTPClient, clock: any WallClock,
        logger: Logger, metrics: RPCServerMetrics = RPCServerMetrics()
    ) throws {
        authentication = try Authentication(
            settings: configuration.auth, dataDirectory: configuration.dataDirectory, http: http, clock: clock
        )
        let secrets = try SecretKeyFile.loadOrCreate(at: configuration.dataDirectory.appendingPathComponent("secret.key"))
        let ids = MonotonicIDGenerator(clock: clock)
        let pageTokens = HMACTokenSealer(key: secrets.key(for: "page-tokens"))
        let accounts = UserAccounts(
            users: storage.users, sessions: storage.sessions, clock: clock, ids: ids, pageTokens: pageTokens,
            domainEvents: ProtobufDomainEvents()
        )
        let events = EventLog(store: storage.events, clock: clock, ids: ids, pageTokens: pageTokens)
        let library = FileLibrary(
            files: storage.files, blobs: storage.blobs, clock: clock, ids: ids, pageTokens: pageTokens,
            linkSigner: HMACSigner(key: secrets.key(for: "download-links")), domainEvents: ProtobufDomainEvents()
        )
        let health = HealthService()
        self.health = health
        let reflection = ReflectionService(
            services: ["grpc.health.v1.Health"] + Self.productServices,
            files: StandardProtosDescriptors.files + GatewayProtosDescriptors.files
        )
        let auth = AuthInterceptor(verifier: authentication.verifier, logger: logger)
        server = GRPCServer(
            services: [
                health, UserServiceImplementation(accounts: accounts), FileServiceImplementation(library: library),
                EventServiceImplementation(log: events),
            ] + reflection.rpcServices,
            interceptors: [
                // Outermost, so its log line and metrics cover refused calls too; the caller's uid reaches it through
                // CallerObservationInterceptor, right after authentication.
                ScopedServerInterceptor(RPCObservationInterceptor(logger: logger, metrics: metrics)),
                ScopedServerInterceptor(auth),
                ScopedServerInterceptor(CallerObservationInterceptor(), scope: .services(Set(Self.productServices))),
                ScopedServerInterceptor(DomainStatusInterceptor(logger: logger), scope: .services(Set(Self.productServices))),
            ],
            plainHTTP: SignedDownloads(library: library),
            configuration: .defaults { $0.host = configuration.host; $0.port = configuration.port },
            logger: logger,
            beforeShutdown: { health.shutDown() }
        )
    }
}
