import ArgumentParser
import LoadGenerator
#if canImport(Glibc)
import Glibc
#endif

/// Opens many connections, makes one call on each (so that every HTTP/2 session is set up), then holds them
/// idle: scripts/bench measures the server's memory per idle connection with it.
struct BenchIdle: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "idle",
        abstract: "Open --connections idle connections to a BenchmarkService server and hold them (prints `ready N`)."
    )

    @Option(help: "host:port of the server.") var target: String
    @Option(help: "Connections to open.") var connections = 1000
    @Option(help: "Seconds to hold them after `ready`.") var hold: Double = 10

    func run() async throws {
        guard let colon = target.lastIndex(of: ":"), let port = Int(target[target.index(after: colon)...]) else {
            throw ValidationError("--target \(target) is not host:port")
        }
        let opened = try await IdleConnections.open(host: String(target[..<colon]), port: port, count: connections)
        // Unbuffered, so that a script reading the pipe sees it at once.
        let line = Array("ready \(opened.count)\n".utf8)
        _ = write(1, line, line.count)
        try await Task.sleep(for: .milliseconds(Int64(hold * 1000)))
        await opened.close()
    }
}
