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

/// The composition root: adapters, use cases and services wired into one server.
public struct GatewayComposition: Sendable {
    public let authentication: Authentication
    public let server: GRPCServer
    public let health: HealthService

    public init(configuration: GatewayConfiguration, http: any HTTPClient, clock: any WallClock, logger: Logger) throws {
        authentication = try Authentication(
            settings: configuration.auth, dataDirectory: configuration.dataDirectory, http: http, clock: clock
        )
        let health = HealthService()
        self.health = health
        let reflection = ReflectionService(
            services: ["grpc.health.v1.Health"],
            files: StandardProtosDescriptors.files + GatewayProtosDescriptors.files
        )
        let auth = AuthInterceptor(verifier: authentication.verifier, logger: logger)
        server = GRPCServer(
            services: [health] + reflection.rpcServices,
            interceptors: [ScopedServerInterceptor(auth)],
            configuration: .defaults { $0.host = configuration.host; $0.port = configuration.port },
            logger: logger,
            beforeShutdown: { health.shutDown() }
        )
    }
}
