import ArgumentParser
import FirebaseAuth
import Foundation
import GatewayApplication
import LoadGenerator
import OpenSSLTLS
import RPCCore
import RPCHTTP2
#if canImport(Glibc)
import Glibc
#endif

/// `gateway-bench run`: load from our client library against any server, measured.
struct BenchRun: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "run",
        abstract: "Load a server with one scenario and report throughput, latency percentiles, errors and CPU.",
        discussion: """
            Scenarios for any grpc.testing.BenchmarkService server: unary, streaming-ping-pong, streaming-qps, \
            server-streaming, client-streaming. health (grpc.health.v1.Health/Check) on any server with the \
            standard health service. On the gateway (with --token or --local-login): get-user, \
            publish, publish-batch, fanout (--streams subscribers per connection while one publisher \
            publishes; delivery latency, and whether every subscriber got every event), upload, download.

            Closed loop by default: each stream keeps one operation going. --rate R is an open loop: R \
            operations per second over all streams, each timed from its intended start, so a stalled server \
            shows in the latencies instead of slowing the load (no coordinated omission).
            """
    )

    @Option(help: "host:port of the server.") var target: String
    @Option(help: "One of: \(ScenarioName.allCases.map(\.rawValue).joined(separator: ", ")).") var scenario: String
    @Option(help: "TCP connections.") var connections = 1
    @Option(help: "Concurrent streams per connection (fanout: subscribers per connection).") var streams = 10
    @Option(help: "Request and response payload in bytes (upload/download: the file's size).") var payload = 0
    @Option(help: "Seconds measured.") var duration: Double = 10
    @Option(help: "Seconds of warm-up before measuring.") var warmup: Double = 2
    @Option(help: "Open loop: operations per second over all streams (fanout: events published per second).") var rate: Double?
    @Option(help: "streaming-qps: messages in flight per stream.") var inFlight = 10
    @Option(help: "publish-batch: events per call.") var batch = 10
    @Option(help: "Deadline of each RPC, in seconds (default none, as h2load; the run ends 10 s after the window).") var timeout: Double?
    @Option(help: "Bearer token for the gateway's services.") var token: String?
    @Flag(help: "Mint a local-mode token from --data-dir (the gateway's local key).") var localLogin = false
    @Option(help: "With --local-login: the gateway's data directory.") var dataDir = "data"
    @Option(help: "With --local-login: the token's uid.") var uid = "gateway-bench"
    @Option(help: "The server's process id, for its CPU use (from /proc).") var serverPid: Int32?
    @Flag(help: "Print the report as one JSON object.") var json = false
    @Flag(help: "Connect over TLS (ALPN h2), checking the server's certificate.") var tls = false
    @Option(help: "With --tls: PEM roots to trust instead of the system's.") var caCert: String?
    @Option(help: "With --tls: the name sent as SNI and checked against the certificate (default: the target's host).")
    var serverName: String?
    @Option(help: "With --tls: a client certificate (PEM) for mutual TLS, with --client-key.") var clientCert: String?
    @Option(help: "With --tls: the client certificate's private key (PEM).") var clientKey: String?

    func validate() throws {
        guard ScenarioName(rawValue: scenario) != nil else {
            throw ValidationError("unknown scenario \(scenario); one of \(ScenarioName.allCases.map(\.rawValue).joined(separator: ", "))")
        }
        guard connections > 0, streams > 0, payload >= 0, duration > 0, warmup >= 0, inFlight > 0, batch > 0, (timeout ?? 1) > 0 else {
            throw ValidationError("counts, sizes and times must be positive")
        }
        if let rate, rate <= 0 { throw ValidationError("--rate must be positive") }
    }

    func run() async throws {
        let name = ScenarioName(rawValue: scenario)!
        guard let colon = target.lastIndex(of: ":"), let port = Int(target[target.index(after: colon)...]) else {
            throw ValidationError("--target \(target) is not host:port")
        }
        var metadata = Metadata()
        if let token = try bearer() { metadata.addString("Bearer \(token)", forKey: "authorization") }
        if name.isGateway && metadata.isEmpty {
            throw ValidationError("\(name.rawValue) calls the gateway's services: give --token or --local-login")
        }
        var shape = LoadShape()
        shape.connections = connections
        shape.streams = streams
        shape.payload = payload
        shape.duration = .milliseconds(Int64(duration * 1000))
        shape.warmup = .milliseconds(Int64(warmup * 1000))
        shape.rate = rate
        shape.inFlight = inFlight
        shape.timeout = timeout.map { .milliseconds(Int64($0 * 1000)) }
        var options = ScenarioOptions()
        options.batch = batch
        var transport = GRPCClientConfiguration()
        if tls {
            var configuration = TLSClientConfiguration(caFile: caCert, serverName: serverName)
            configuration.certificateChainFile = clientCert
            configuration.privateKeyFile = clientKey
            do {
                transport.tls = try TLSContext.client(configuration)
            } catch {
                throw ValidationError("\(error)")
            }
            transport.tlsServerName = serverName
        } else if caCert != nil || serverName != nil || clientCert != nil || clientKey != nil {
            throw ValidationError("--ca-cert, --server-name, --client-cert and --client-key need --tls")
        }
        let report = try await Runner.run(
            name, target: .init(host: String(target[..<colon]), port: port, metadata: metadata, transport: transport),
            shape: shape, options: options,
            serverPID: serverPid
        )
        print(json ? try report.json() : report.text)
    }

    private func bearer() throws -> String? {
        if let token { return token }
        guard localLogin else { return nil }
        let authority = try LocalAuthority.loadOrCreate(in: URL(fileURLWithPath: dataDir, isDirectory: true))
        var now = timespec()
        clock_gettime(CLOCK_REALTIME, &now)
        return try authority.mint(
            uid: uid, email: "\(uid)@example.com", admin: false, now: UnixTime(seconds: Int64(now.tv_sec)),
            lifetimeSeconds: 3600, kind: .idToken
        )
    }
}
