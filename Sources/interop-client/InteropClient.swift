import ArgumentParser
import InteropTesting
import OpenSSLTLS
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
    @Option(name: .customLong("use_test_ca"), help: "Trust --ca_file (the interop suite's ca.pem) instead of the system's roots.")
    var useTestCA: Bool = false
    @Option(name: .customLong("ca_file"), help: "PEM roots for --use_test_ca.") var caFile: String?
    @Option(name: .customLong("server_host_override"), help: "The name sent as SNI and checked against the certificate.")
    var serverHostOverride: String?

    func validate() throws {
        if useTestCA, caFile == nil {
            throw ValidationError("--use_test_ca=true needs --ca_file (the interop test CA is not bundled)")
        }
    }

    func run() async throws {
        var configuration = GRPCClientConfiguration()
        if useTLS {
            do {
                configuration.tls = try TLSContext.client(TLSClientConfiguration(caFile: useTestCA ? caFile : nil))
            } catch {
                throw ValidationError("\(error)")
            }
            configuration.tlsServerName = serverHostOverride
        }
        let cases: [InteropTestCase]
        if testCase == "all" {
            cases = InteropTestCase.allCases
        } else if let one = InteropTestCase(rawValue: testCase) {
            cases = [one]
        } else {
            throw ValidationError("unknown test case \(testCase); known: \(InteropTestCase.allCases.map(\.rawValue).joined(separator: ", "))")
        }
        let transport = HTTP2ClientTransport(host: serverHost, port: serverPort, configuration: configuration)
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
