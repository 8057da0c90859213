import ArgumentParser
import InteropTesting
import RPCCore
import RPCHTTP2

/// The gRPC interop client: runs the interop spec's cases against any server.
@main
struct InteropClient: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "interop-client",
        abstract: "Runs the gRPC interop test cases against a server."
    )

    @Option(name: .customLong("server_host")) var serverHost: String = "127.0.0.1"
    @Option(name: .customLong("server_port")) var serverPort: Int
    @Option(name: .customLong("test_case"), help: "A case name, or `all`.") var testCase: String = "all"
    @Option(name: .customLong("use_tls")) var useTLS: Bool = false
    @Option(name: .customLong("server_host_override")) var serverHostOverride: String?

    func run() async throws {
        guard !useTLS else { throw ValidationError("--use_tls=true is not supported yet") }
        let cases: [InteropTestCase]
        if testCase == "all" {
            cases = InteropTestCase.allCases
        } else if let one = InteropTestCase(rawValue: testCase) {
            cases = [one]
        } else {
            throw ValidationError("unknown test case \(testCase); known: \(InteropTestCase.allCases.map(\.rawValue).joined(separator: ", "))")
        }
        let transport = HTTP2ClientTransport(host: serverHost, port: serverPort)
        let client = RPCClient(transport: transport)
        var failed: [String] = []
        for c in cases {
            do {
                try await c.run(with: client)
                print("PASS \(c.rawValue)")
            } catch {
                print("FAIL \(c.rawValue): \(error)")
                failed.append(c.rawValue)
            }
        }
        await transport.close()
        if !failed.isEmpty { throw ExitCode(1) }
    }
}
