import ArgumentParser
#if canImport(Glibc)
import Glibc
#endif
import InteropTesting
import Logging
import OpenSSLTLS
import RPCHTTP2
import ServiceLifecycle
import StandardProtos
import StandardServices

/// The gRPC interop server: `grpc.testing.TestService` per the interop spec, `grpc.testing.BenchmarkService`
/// (for scripts/bench-unary), health and reflection.
@main
struct InteropServer: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "interop-server",
        abstract: "Serves grpc.testing.TestService for the official gRPC interop clients."
    )

    @Option(help: "Port to listen on (0 picks a free one and prints it).")
    var port: Int = 50051

    @Option(help: "Address to listen on.")
    var host: String = "127.0.0.1"

    @Option(name: .customLong("use_tls"), help: "Serve TLS (ALPN h2) with --tls_cert_file and --tls_key_file.")
    var useTLS: Bool = false

    @Option(name: .customLong("tls_cert_file"), help: "PEM certificate chain, e.g. the interop suite's server1.pem.")
    var certificateFile: String?

    @Option(name: .customLong("tls_key_file"), help: "PEM private key of the certificate, e.g. server1.key.")
    var keyFile: String?

    func validate() throws {
        if useTLS, certificateFile == nil || keyFile == nil {
            throw ValidationError("--use_tls=true needs --tls_cert_file and --tls_key_file (the interop test certificates are not bundled)")
        }
    }

    func run() async throws {
        var tls: TLSServerCredentials?
        if useTLS, let certificateFile, let keyFile {
            do {
                tls = try TLSServerCredentials(TLSServerConfiguration(certificateChainFile: certificateFile, privateKeyFile: keyFile))
            } catch {
                throw ValidationError("\(error)")
            }
        }
        LoggingSystem.bootstrap { StreamLogHandler.standardError(label: $0) }
        var logger = Logger(label: "interop-server")
        logger.logLevel = .info
        let health = HealthService()
        let reflection = ReflectionService(
            services: ["grpc.testing.TestService", "grpc.testing.BenchmarkService", "grpc.health.v1.Health"],
            files: StandardProtosDescriptors.files
        )
        let server = GRPCServer(
            services: [InteropTestService(), BenchmarkService(), health] + reflection.rpcServices,
            configuration: .defaults { $0.host = host; $0.port = port; $0.tls = tls },
            logger: logger,
            beforeShutdown: { health.shutDown() }
        )
        let group = ServiceGroup(
            services: [server], gracefulShutdownSignals: [.sigterm, .sigint], logger: logger
        )
        try await withThrowingTaskGroup(of: Void.self) { tasks in
            tasks.addTask { try await group.run() }
            tasks.addTask {
                let address = try await server.listeningAddress
                // Unbuffered, so a test that reads the port from a pipe sees it at once.
                let line = Array("listening on \(address.ipAddress ?? host):\(address.port ?? port)\n".utf8)
                _ = write(1, line, line.count)
            }
            try await tasks.waitForAll()
        }
    }
}
