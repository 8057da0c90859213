import ArgumentParser
#if canImport(Glibc)
import Glibc
#endif
import InteropTesting
import Logging
import RPCHTTP2

/// `grpc.testing.BenchmarkService` (all five methods) on our runtime: the server `gateway-bench run` and
/// scripts/bench compare with grpc-go's and grpc-swift-2's.
struct BenchServer: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "server",
        abstract: "Serve grpc.testing.BenchmarkService on our gRPC runtime (prints the address it listens on)."
    )

    @Option(help: "Port to listen on (0 picks a free one).")
    var port = 0

    @Option(help: "Address to listen on.")
    var host = "127.0.0.1"

    func run() async throws {
        var logger = Logger(label: "gateway-bench-server")
        logger.logLevel = .warning
        let server = GRPCServer(
            services: [BenchmarkService()], configuration: .defaults { $0.host = host; $0.port = port }, logger: logger
        )
        try await withThrowingTaskGroup(of: Void.self) { tasks in
            tasks.addTask { try await server.run() }
            let address = try await server.listeningAddress
            // Unbuffered, so that a script reading the port from a pipe sees it at once.
            let line = Array("listening on \(address.ipAddress ?? host):\(address.port ?? port)\n".utf8)
            _ = write(1, line, line.count)
            try await tasks.waitForAll()
        }
    }
}
