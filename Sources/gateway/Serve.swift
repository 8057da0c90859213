import ArgumentParser
import CurlHTTP
#if canImport(Glibc)
import Glibc
#endif
import GatewayServer
import Logging
import ServiceLifecycle

struct Serve: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Serve the gateway (the default command).")

    @Option(help: "Address to listen on (env GATEWAY_HOST; default 127.0.0.1).")
    var host: String?

    @Option(help: "Port to listen on; 0 picks a free one (env GATEWAY_PORT; default 50051).")
    var port: Int?

    @OptionGroup var data: DataOptions
    @OptionGroup var auth: AuthOptions

    func run() async throws {
        let environment = Environment()
        LoggingSystem.bootstrap { StreamLogHandler.standardError(label: $0) }
        var logger = Logger(label: "gateway")
        logger.logLevel = .info
        let settings = try auth.settings(environment)
        let host = environment.string(host, "GATEWAY_HOST") ?? "127.0.0.1"
        let port = try environment.integer(port, "GATEWAY_PORT") ?? 50051
        if settings.isLocalMode && !GatewayConfiguration.isLoopback(host) {
            throw ConfigurationError("""
                local mode (no --firebase-project-id) trusts a key in the data directory and serves loopback only; \
                \(host) is not a loopback address
                """)
        }
        let configuration = GatewayConfiguration(host: host, port: port, dataDirectory: data.directory(environment), auth: settings)
        let gateway = try GatewayComposition(configuration: configuration, http: CurlHTTPClient(), clock: SystemWallClock(), logger: logger)
        logger.info("starting", metadata: configuration.summary)
        await gateway.authentication.prefetchKeys()
        let group = ServiceGroup(services: [gateway.server], gracefulShutdownSignals: [.sigterm, .sigint], logger: logger)
        try await withThrowingTaskGroup(of: Void.self) { tasks in
            tasks.addTask { try await group.run() }
            tasks.addTask {
                let address = try await gateway.server.listeningAddress
                // Unbuffered, so a test that reads the port from a pipe sees it at once.
                let line = Array("listening on \(address.ipAddress ?? host):\(address.port ?? port)\n".utf8)
                _ = write(1, line, line.count)
            }
            try await tasks.waitForAll()
        }
    }
}
