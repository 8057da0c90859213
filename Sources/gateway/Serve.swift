import ArgumentParser
import CurlHTTP
#if canImport(Glibc)
import Glibc
#endif
import GatewayServer
import Logging
import Metrics
import Prometheus
import ServiceLifecycle
import UnixSignals

struct Serve: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Serve the gateway (the default command).")

    @OptionGroup var config: ConfigOptions
    @OptionGroup var server: ServerOptions
    @OptionGroup var data: DataOptions
    @OptionGroup var auth: AuthOptions
    @OptionGroup var storage: StorageOptions
    @OptionGroup(title: "TLS") var tls: TLSOptions
    @OptionGroup(title: "Limits") var limits: LimitOptions

    func run() async throws {
        // Log lines still buffered go out before the error that ends the command is printed (after `run`
        // returns), not in the middle of it.
        defer { LogOutput.flushStandardError() }
        let resolved = try resolveConfiguration([server, data, auth, storage, tls, limits], config: config)
        let settings = resolved.settings
        // The only place logging and metrics are bootstrapped.
        LoggingSystem.bootstrap { settings.log.makeHandler(label: $0) }
        let registry = settings.metrics.port.map { _ in PrometheusCollectorRegistry() }
        if let registry {
            MetricsSystem.bootstrap(GatewaySettings.Metrics.prometheusFactory(registry: registry))
        }
        let logger = Logger(label: "gateway")
        logger.info("configuration", metadata: resolved.summary)
        try settings.validateForServing()

        var configuration = settings.gatewayConfiguration
        let tls = try GatewayTLS(settings: settings.tls, logger: logger)
        configuration.tls = tls?.credentials
        // SIGHUP re-reads the certificate, key and client CA: new connections get them, open ones stay. It is
        // trapped here, before anything is served, and also without TLS (`systemctl reload` must not stop the
        // gateway).
        let hangups = await UnixSignalsSequence(trapping: .sighup)
        let reloads = Task {
            for await _ in hangups {
                if let tls { tls.reload() } else { logger.info("SIGHUP: no TLS certificate to reload") }
            }
        }
        defer { reloads.cancel() }
        let http = CurlHTTPClient()
        let clock = SystemWallClock()
        let credentials = settings.awsCredentials(http: http, clock: clock)
        let storage = try await GatewayStorage.open(settings, credentials: credentials, http: http, clock: clock, logger: logger)
        let gateway = try GatewayComposition(configuration: configuration, storage: storage, http: http, clock: clock, logger: logger)
        var services: [any Service] = [gateway.server]
        if let relay = try await EventRelayService.sns(
            settings, storage: storage, credentials: credentials, http: http, clock: clock, logger: logger
        ) {
            services.append(relay)
        }
        if let registry, let port = settings.metrics.port {
            // First in the group, so it stops last: scrapes still see the server drain.
            services.insert(MetricsEndpoint(host: settings.metrics.host, port: port, registry: registry, logger: logger), at: 0)
        }
        logger.info("starting", metadata: configuration.summary)
        await gateway.authentication.prefetchKeys()
        if settings.backend == .embedded {
            // Blobs a crash or an I/O failure left without a record (see FileLibrary.sweepUnreferencedBlobs),
            // in the background: serving does not wait for it, and it is safe alongside uploads. On S3 the
            // bucket may be large and shared by many gateways: there it is not run at every start.
            Task {
                do {
                    let removed = try await gateway.files.sweepUnreferencedBlobs()
                    if removed > 0 { logger.info("deleted blobs no file referenced", metadata: ["blobs": "\(removed)"]) }
                } catch {
                    logger.warning("the sweep of unreferenced blobs failed", metadata: ["error": "\(error)"])
                }
            }
        }
        let group = ServiceGroup(services: services, gracefulShutdownSignals: [.sigterm, .sigint], logger: logger)
        try await withThrowingTaskGroup(of: Void.self) { tasks in
            tasks.addTask { try await group.run() }
            tasks.addTask {
                let address = try await gateway.server.listeningAddress
                // Unbuffered, so a test that reads the port from a pipe sees it at once.
                let line = Array("listening on \(address.ipAddress ?? settings.host):\(address.port ?? settings.port)\n".utf8)
                _ = write(1, line, line.count)
            }
            try await tasks.waitForAll()
        }
        try await storage.close()
    }
}
