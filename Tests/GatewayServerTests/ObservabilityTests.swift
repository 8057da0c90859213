import CurlHTTP
import FirebaseAuth
import Foundation
import GatewayApplication
@testable import GatewayServer
import Logging
import Metrics
import NIOPosix
import Prometheus
import RPCCore
import Synchronization
import Testing

/// Log events kept in memory, for one test.
private final class CapturedLogs: Sendable {
    struct Entry: Sendable {
        var level: Logger.Level
        var message: String
        var metadata: Logger.Metadata
    }

    private let store = Mutex<[Entry]>([])

    var entries: [Entry] { store.withLock { $0 } }

    var logger: Logger {
        Logger(label: "test") { _ in Handler(logs: self) }
    }

    struct Handler: LogHandler {
        let logs: CapturedLogs
        var logLevel: Logger.Level = .trace
        var metadata: Logger.Metadata = [:]

        func log(event: LogEvent) {
            var merged = metadata
            merged.merge(event.metadata ?? [:]) { _, new in new }
            let entry = Entry(level: event.level, message: event.message.description, metadata: merged)
            logs.store.withLock { $0.append(entry) }
        }

        subscript(metadataKey key: String) -> Logger.Metadata.Value? {
            get { metadata[key] }
            set { metadata[key] = newValue }
        }
    }
}

/// Methods over raw bytes, so message sizes are exact.
private enum Echo {
    static let service = ServiceDescriptor(fullyQualifiedName: "test.v1.Echo")
    /// Public: answers with one empty message.
    static let ping = MethodDescriptor(service: service, method: "Ping", kind: .unary)
    /// Echoes every message.
    static let chat = MethodDescriptor(service: service, method: "Chat", kind: .bidirectionalStreaming)
    static let notFound = MethodDescriptor(service: service, method: "NotFound", kind: .unary)
    static let crash = MethodDescriptor(service: service, method: "Crash", kind: .unary)
    /// Never answers (until cancelled).
    static let hang = MethodDescriptor(service: service, method: "Hang", kind: .unary)

    struct Service: RPCService {
        struct Failure: Error {}

        func registerMethods(with router: inout RPCRouter) {
            router.register(ping) { stream, _ in try await stream.outbound.write([]) }
            router.register(chat) { stream, _ in
                for try await message in stream.inbound { try await stream.outbound.write(message) }
            }
            router.register(notFound) { _, _ in throw RPCError(code: .notFound, message: "nothing here") }
            router.register(crash) { _, _ in throw Failure() }
            router.register(hang) { _, _ in try await Task.sleep(for: .seconds(60)) }
        }
    }

    static let policy: AccessPolicy = {
        var policy = AccessPolicy()
        policy.set(.init(.public), service: service.fullyQualifiedName, method: "Ping")
        return policy
    }()
}

/// The gateway's interceptor order around the echo service, with metrics in a registry of the test's own.
private struct Harness {
    let logs = CapturedLogs()
    let registry = PrometheusCollectorRegistry()
    let transport: InProcessTransport

    /// `registered`: the metrics know the service's methods from the start (as the gateway's do); otherwise
    /// each method's handles are made on its first call.
    init(registered: Bool = true) throws {
        let keys = try authority.signingKeys()
        let verifier = FirebaseTokenVerifier(
            configuration: .init(projectID: LocalAuthority.projectID), idTokenKeys: keys, sessionCookieKeys: keys, clock: clock
        )
        let metrics = RPCServerMetrics(
            factory: GatewaySettings.Metrics.prometheusFactory(registry: registry),
            methods: registered ? RPCRouter(services: [Echo.Service()]).methods : []
        )
        transport = InProcessTransport(services: [Echo.Service()], interceptors: [
            ScopedServerInterceptor(RPCObservationInterceptor(logger: logs.logger, metrics: metrics)),
            ScopedServerInterceptor(AuthInterceptor(verifier: verifier, policy: Echo.policy)),
            ScopedServerInterceptor(CallerObservationInterceptor()),
        ])
    }

    /// Sends `messages`, half-closes, and returns the status and the messages received.
    func call(
        _ method: MethodDescriptor, token: String? = nil, messages: [[UInt8]] = [[]], timeout: Duration? = nil
    ) async throws -> (code: StatusCode, messages: [[UInt8]]) {
        let metadata: Metadata = token.map { ["authorization": .string("Bearer \($0)")] } ?? [:]
        return try await transport.withStream(descriptor: method, metadata: metadata, options: CallOptions(timeout: timeout)) { stream in
            for message in messages { try await stream.outbound.write(message) }
            try await stream.finish()
            var received: [[UInt8]] = []
            for try await part in stream.inbound {
                switch part {
                case .message(let message): received.append(message)
                case .status(let status, _): return (status.code, received)
                case .metadata: break
                }
            }
            return (.unknown, received)
        }
    }

    /// The `rpc` log lines.
    var rpcLines: [CapturedLogs.Entry] { logs.entries.filter { $0.message == "rpc" } }

    var exposition: String { registry.emitToString() }

    /// The value of one sample, by its name and labels as exported.
    func sample(_ series: String) -> String? {
        exposition.split(separator: "\n").first { $0.hasPrefix(series + " ") }.map { String($0.dropFirst(series.count + 1)) }
    }
}

@Suite("observability: RPC log lines, metrics, JSON logs, the metrics endpoint")
struct ObservabilityTests {
    @Test func oneLogLinePerRPCWithMethodStatusDurationPeerAndUser() async throws {
        let harness = try Harness()
        let alice = token(uid: "alice")
        #expect(try await harness.call(Echo.chat, token: alice, messages: [Array("hi".utf8)]).code == .ok)
        #expect(try await harness.call(Echo.chat, token: "not.a.token").code == .unauthenticated)
        #expect(try await harness.call(Echo.ping).code == .ok)

        let lines = harness.rpcLines
        try #require(lines.count == 3)
        #expect(lines.allSatisfy { $0.level == .info })
        let (ok, refused, ping) = (lines[0].metadata, lines[1].metadata, lines[2].metadata)
        #expect(ok["rpc.method"] == "test.v1.Echo/Chat")
        #expect(ok["rpc.grpc.status_code"] == "OK")
        #expect(ok["net.peer"] == "in-process")
        #expect(ok["user.id"] == "alice")
        guard case .stringConvertible(let duration) = ok["rpc.duration_ms"], let milliseconds = duration as? Double else {
            Issue.record("rpc.duration_ms is not a number: \(String(describing: ok["rpc.duration_ms"]))")
            return
        }
        #expect(milliseconds >= 0 && milliseconds < 10_000)
        #expect(Set(ok.keys) == ["rpc.method", "rpc.grpc.status_code", "rpc.duration_ms", "net.peer", "user.id"])
        #expect(refused["rpc.grpc.status_code"] == "UNAUTHENTICATED")
        #expect(refused["user.id"] == nil, "no verified caller")
        #expect(ping["rpc.method"] == "test.v1.Echo/Ping" && ping["user.id"] == nil)

        let everything = harness.logs.entries.map { "\($0.message) \($0.metadata)" }.joined(separator: "\n")
        #expect(!everything.contains(alice) && !everything.contains("not.a.token"), "tokens are never logged")
        #expect(!everything.contains("authorization"), "metadata is never logged")
    }

    @Test func statusCodesAreTheOnesTheClientSees() async throws {
        let harness = try Harness()
        let alice = token(uid: "alice")
        #expect(try await harness.call(Echo.notFound, token: alice).code == .notFound)
        #expect(try await harness.call(Echo.crash, token: alice).code == .unknown)
        #expect(try await harness.call(Echo.hang, token: alice, timeout: .milliseconds(50)).code == .deadlineExceeded)
        let codes = harness.rpcLines.map { $0.metadata["rpc.grpc.status_code"] }
        #expect(codes == ["NOT_FOUND", "UNKNOWN", "DEADLINE_EXCEEDED"])
        #expect(harness.sample(#"rpc_server_handled_total{rpc_method="test.v1.Echo/Hang",rpc_grpc_status_code="DEADLINE_EXCEEDED"}"#) == "1")
    }

    @Test(arguments: [true, false])
    func countersByMethodAndCodeMessagesAndBytes(registered: Bool) async throws {
        let harness = try Harness(registered: registered)
        let alice = token(uid: "alice")
        let messages = [Array("hello".utf8), Array("world!".utf8), []]
        #expect(try await harness.call(Echo.chat, token: alice, messages: messages).messages == messages)
        #expect(try await harness.call(Echo.chat, token: alice, messages: [Array("abc".utf8)]).code == .ok)
        #expect(try await harness.call(Echo.chat, messages: [Array("refused".utf8)]).code == .unauthenticated)

        let chat = #"{rpc_method="test.v1.Echo/Chat"}"#
        #expect(harness.sample("rpc_server_started_total" + chat) == "3")
        #expect(harness.sample(#"rpc_server_handled_total{rpc_method="test.v1.Echo/Chat",rpc_grpc_status_code="OK"}"#) == "2")
        #expect(harness.sample(#"rpc_server_handled_total{rpc_method="test.v1.Echo/Chat",rpc_grpc_status_code="UNAUTHENTICATED"}"#) == "1")
        // Registered methods are exported before their first call; a status code only once it was returned.
        #expect(harness.sample(#"rpc_server_started_total{rpc_method="test.v1.Echo/Ping"}"#) == (registered ? "0" : nil))
        #expect(!harness.exposition.contains(#"rpc_grpc_status_code="NOT_FOUND""#))
        // The refused call's message was never read by a handler, so it is not counted.
        #expect(harness.sample("rpc_server_request_messages_total" + chat) == "4")
        #expect(harness.sample("rpc_server_response_messages_total" + chat) == "4")
        #expect(harness.sample("rpc_server_request_bytes_total" + chat) == "14")
        #expect(harness.sample("rpc_server_response_bytes_total" + chat) == "14")
        #expect(harness.sample("rpc_server_duration_seconds_count" + chat) == "3")
        #expect(harness.exposition.contains(#"rpc_server_duration_seconds_bucket{rpc_method="test.v1.Echo/Chat",le="0.001"}"#))
        #expect(harness.sample("rpc_server_active_streams" + chat).flatMap(Double.init) == 0)
    }

    @Test func activeStreamsCountCallsInFlight() async throws {
        let harness = try Harness()
        let call = Task { try await harness.call(Echo.hang, token: token(uid: "alice")) }
        let series = #"rpc_server_active_streams{rpc_method="test.v1.Echo/Hang"}"#
        var inFlight: Double?
        for _ in 0..<200 {
            inFlight = harness.sample(series).flatMap(Double.init)
            if inFlight == 1 { break }
            try await Task.sleep(for: .milliseconds(10))
        }
        #expect(inFlight == 1)
        call.cancel()
        _ = try? await call.value
        for _ in 0..<200 where harness.sample(series).flatMap(Double.init) != 0 {
            try await Task.sleep(for: .milliseconds(10))
        }
        #expect(harness.sample(series).flatMap(Double.init) == 0)
        #expect(harness.rpcLines.last?.metadata["rpc.grpc.status_code"] == "CANCELLED")
    }

    // MARK: - JSON log lines

    @Test func jsonLinesCarryTimestampLevelLabelMessageAndMetadata() throws {
        let lines = Mutex<[String]>([])
        var logger = Logger(label: "gateway.test") { label in
            JSONLogHandler(label: label, output: LogOutput { line in lines.withLock { $0.append(line) } })
        }
        logger[metadataKey: "request.id"] = "r-1"
        logger.debug("not at info")
        logger.info("said \"hi\"\n\ttwice \u{1}", metadata: [
            "rpc.duration_ms": .stringConvertible(1.25), "count": .stringConvertible(3), "ok": .stringConvertible(true),
            "nested": ["list": ["a", "b"]], "text": "é ✓",
        ])
        struct Oops: Error, CustomStringConvertible { var description: String { "oops" } }
        logger.error("failed", error: Oops())

        let written = lines.withLock { $0 }
        #expect(written.count == 2, "below the level, nothing is written")
        #expect(written.allSatisfy { $0.hasSuffix("}\n") && $0.filter { $0 == "\n" }.count == 1 })
        let object = try #require(try JSONSerialization.jsonObject(with: Data(written[0].utf8)) as? [String: Any])
        #expect(object["level"] as? String == "info")
        #expect(object["label"] as? String == "gateway.test")
        #expect(object["message"] as? String == "said \"hi\"\n\ttwice \u{1}")
        let timestamp = try #require(object["timestamp"] as? String)
        #expect(timestamp.wholeMatch(of: /\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z/) != nil, "\(timestamp)")
        let metadata = try #require(object["metadata"] as? [String: Any])
        #expect(metadata["request.id"] as? String == "r-1")
        #expect(metadata["rpc.duration_ms"] as? Double == 1.25)
        #expect(metadata["count"] as? Int == 3)
        #expect(metadata["ok"] as? Bool == true)
        #expect((metadata["nested"] as? [String: Any])?["list"] as? [String] == ["a", "b"])
        #expect(metadata["text"] as? String == "é ✓")
        let failure = try #require(try JSONSerialization.jsonObject(with: Data(written[1].utf8)) as? [String: Any])
        #expect(failure["level"] as? String == "error" && failure["error"] as? String == "oops")
    }

    @Test func theLogSettingsChooseFormatAndLevel() {
        var settings = GatewaySettings.Log()
        settings.level = .warning
        settings.format = .json
        let json = settings.makeHandler(label: "x")
        #expect(json is JSONLogHandler && json.logLevel == .warning)
        settings.format = .text
        #expect(settings.makeHandler(label: "x") is TextLogHandler)
    }

    // MARK: - Text log lines

    /// The same line as swift-log's `StreamLogHandler` writes for the same event, timestamp aside.
    @Test func textLinesKeepStreamLogHandlersLayout() throws {
        let lines = Mutex<[String]>([])
        var logger = Logger(label: "gateway.test") { label in
            TextLogHandler(label: label, output: LogOutput { line in lines.withLock { $0.append(line) } })
        }
        logger[metadataKey: "request.id"] = "r-1"
        logger.debug("not at info")
        logger.info("rpc", metadata: ["rpc.method": "a.B/C", "rpc.duration_ms": .stringConvertible(1.25)])
        logger.info("plain")
        struct Oops: Error, CustomStringConvertible { var description: String { "oops" } }
        logger.error("failed", error: Oops())

        let written = lines.withLock { $0 }
        #expect(written.count == 3)
        let stamp = /\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d[+-]\d{4}/
        #expect(written.allSatisfy { $0.prefixMatch(of: stamp) != nil }, "\(written)")
        let rest = written.map { String($0.drop { $0 != " " }) }
        #expect(rest[0] == " info gateway.test: request.id=r-1 rpc.duration_ms=1.25 rpc.method=a.B/C [GatewayServerTests] rpc\n")
        #expect(rest[1] == " info gateway.test: request.id=r-1 [GatewayServerTests] plain\n")
        #expect(rest[2].hasPrefix(" error gateway.test: error.message=oops error.type=") && rest[2].hasSuffix(" request.id=r-1 [GatewayServerTests] failed\n"))
    }

    /// Lines from many threads reach the descriptor whole, in each thread's order, none lost (the 1.5 MiB
    /// written also crosses the buffer limit, where writers write for themselves); `flush` returns once
    /// everything is written.
    @Test func theBatchedWriterLosesAndTearsNothing() throws {
        var ends: [Int32] = [0, 0]
        try #require(pipe(&ends) == 0)
        let (readEnd, writeEnd) = (ends[0], ends[1])
        let writer = BatchedWriter(descriptor: writeEnd)
        let collected = Mutex<[UInt8]>([])
        let reader = Thread {
            var chunk = [UInt8](repeating: 0, count: 65536)
            while true {
                let count = read(readEnd, &chunk, chunk.count)
                if count <= 0 { return }
                collected.withLock { $0.append(contentsOf: chunk[0..<count]) }
            }
        }
        reader.start()
        DispatchQueue.concurrentPerform(iterations: 8) { thread in
            for n in 0..<5_000 { writer.write("thread \(thread) line \(n) \(String(repeating: "x", count: n % 300))\n") }
        }
        writer.flush()
        close(writeEnd)
        while !reader.isFinished { Thread.sleep(forTimeInterval: 0.01) }
        close(readEnd)

        let text = String(decoding: collected.withLock { $0 }, as: UTF8.self)
        let lines = text.split(separator: "\n")
        #expect(lines.count == 40_000)
        for thread in 0..<8 {
            let numbers = lines.filter { $0.hasPrefix("thread \(thread) ") }.map { Int($0.split(separator: " ")[3])! }
            #expect(numbers == Array(0..<5_000))
        }
        #expect(lines.allSatisfy { line in
            let parts = line.split(separator: " ", omittingEmptySubsequences: false)
            return parts.count == 5 && parts[4].count == Int(parts[3])! % 300
        })
    }

    // MARK: - The endpoint

    @Test func theEndpointServesTheRegistryAtSlashMetrics() async throws {
        let registry = PrometheusCollectorRegistry()
        Counter(label: "probe_total", dimensions: [("kind", "test")], factory: PrometheusMetricsFactory(registry: registry)).increment(by: 2)
        let endpoint = MetricsEndpoint(host: "127.0.0.1", port: 0, registry: registry, logger: Logger(label: "test"))
        let service = Task { try await endpoint.run() }
        defer { service.cancel() }
        let port = try #require(try await endpoint.listeningAddress.port)

        // Fetched with our libcurl client (Foundation's URLSession leaks inside libcurl under LeakSanitizer).
        let http = CurlHTTPClient()
        let metrics = try await http.send(HTTPRequest(url: "http://127.0.0.1:\(port)/metrics"))
        #expect(metrics.status == 200)
        #expect(metrics.header("content-type") == "text/plain; version=0.0.4; charset=utf-8")
        #expect(String(decoding: metrics.body, as: UTF8.self).contains(#"probe_total{kind="test"} 2"#))
        #expect(try await http.send(HTTPRequest(url: "http://127.0.0.1:\(port)/other")).status == 404)
        #expect(try await http.send(HTTPRequest(method: "POST", url: "http://127.0.0.1:\(port)/metrics")).status == 405)

        service.cancel()
        try await service.value
    }
}
