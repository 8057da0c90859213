import ArgumentParser
#if canImport(Glibc)
import Glibc
#endif
import InteropTesting
import Logging
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

    @Option(name: .customLong("use_tls"), help: "Serve TLS (not supported yet: the TLS issue adds it).")
    var useTLS: Bool = false

    func run() async throws {
        guard !useTLS else {
            throw ValidationError("--use_tls=true is not supported yet; TLS comes with the TLS issue")
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
            configuration: .defaults { $0.host = host; $0.port = port },
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
