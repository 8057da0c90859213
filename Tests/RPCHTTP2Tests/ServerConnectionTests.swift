import InteropTesting
import NIOCore
@testable import RPCHTTP2
import RPCCore
import StandardProtos
import Synchronization
import Testing

@Suite("server connection state machine (no sockets)")
struct ServerConnectionTests {
    static let unary = "/grpc.testing.TestService/UnaryCall"
    static let fullDuplex = "/grpc.testing.TestService/FullDuplexCall"

    func simpleRequest(responseSize: Int32) throws -> [UInt8] {
        ConnectionHarness.frame(try Grpc_Testing_SimpleRequest.with { $0.responseSize = responseSize }.serializedBytes())
    }

    @Test func unaryRoundTrip() async throws {
        let h = try await ConnectionHarness(services: [InteropTestService()])
        let id = try h.request(ConnectionHarness.grpcHeaders(path: Self.unary), body: simpleRequest(responseSize: 10))
        try await h.pump { h.closed(id) }
        let r = try #require(h.responses[id])
        #expect(r.header(":status") == "200" && r.header("content-type") == "application/grpc")
        #expect(r.grpcStatus == 0)
        let message = try Grpc_Testing_SimpleResponse(serializedBytes: Array(r.data.dropFirst(5)))
        #expect(message.payload?.body.count == 10)
        try await h.close()
    }

    @Test func messageSplitAcrossManyDataFrames() async throws {
        let h = try await ConnectionHarness(services: [InteropTestService()])
        h.maxDataChunk = 1
        let body = ConnectionHarness.frame(try Grpc_Testing_SimpleRequest.with {
            $0.responseSize = 3
            $0.payload = .with { $0.body = [UInt8](repeating: 1, count: 200) }
        }.serializedBytes())
        let id = try h.request(ConnectionHarness.grpcHeaders(path: Self.unary), body: body)
        try await h.pump { h.closed(id) }
        #expect(h.responses[id]?.grpcStatus == 0)
        try await h.close()
    }

    @Test func unknownServiceAndMethodAreTrailersOnlyUnimplemented() async throws {
        let h = try await ConnectionHarness(services: [InteropTestService()])
        let a = try h.request(ConnectionHarness.grpcHeaders(path: "/nope.Service/Call"), body: try simpleRequest(responseSize: 1))
        let b = try h.request(ConnectionHarness.grpcHeaders(path: "/grpc.testing.TestService/Nope"), body: try simpleRequest(responseSize: 1))
        try await h.pump { h.closed(a) && h.closed(b) }
        for (id, message) in [(a, "unknown service nope.Service"), (b, "unknown method Nope for service grpc.testing.TestService")] {
            let r = try #require(h.responses[id])
            #expect(r.headerBlocks.count == 1)  // trailers-only
            #expect(r.grpcStatus == 12 && r.header("grpc-message") == message)
        }
        try await h.close()
    }

    @Test func wrongContentTypeIs415AndGetIs405() async throws {
        let h = try await ConnectionHarness(services: [InteropTestService()])
        var json = ConnectionHarness.grpcHeaders(path: Self.unary)
        json[4].1 = "application/json"
        let a = try h.request(json, body: [])
        var get = ConnectionHarness.grpcHeaders(path: Self.unary)
        get[0].1 = "GET"
        let b = try h.request(get, body: [])
        try await h.pump { h.closed(a) && h.closed(b) }
        #expect(h.responses[a]?.header(":status") == "415" && h.responses[a]?.grpcStatus == 3)
        #expect(h.responses[b]?.header(":status") == "405" && h.responses[b]?.grpcStatus == 13)
        try await h.close()
    }

    @Test func oversizeMessageIsResourceExhausted() async throws {
        let h = try await ConnectionHarness(services: [InteropTestService()], configuration: .defaults { $0.maxReceiveMessageSize = 1000 })
        let id = try h.request(ConnectionHarness.grpcHeaders(path: Self.unary), body: ConnectionHarness.frame([UInt8](repeating: 0, count: 1001)))
        try await h.pump { h.closed(id) }
        #expect(h.responses[id]?.grpcStatus == 8)
        try await h.close()
    }

    @Test func compressedFlagWithoutEncodingIsInternal() async throws {
        let h = try await ConnectionHarness(services: [InteropTestService()])
        let id = try h.request(ConnectionHarness.grpcHeaders(path: Self.unary), body: ConnectionHarness.frame([1, 2], flag: 1))
        try await h.pump { h.closed(id) }
        #expect(h.responses[id]?.grpcStatus == 13)
        try await h.close()
    }

    /// A message that fails to decode (compressed flag without an encoding) used to keep its bytes out of the
    /// connection window for good: enough such calls shut the window, and every later call on the connection
    /// stalled. (Found in review.)
    @Test func aMessageThatFailsToDecodeGivesItsWindowBack() async throws {
        var configuration = GRPCServerConfiguration.defaults
        configuration.connectionWindowSize = 65_535
        configuration.streamWindowSize = 65_535
        let h = try await ConnectionHarness(services: [InteropTestService()], configuration: configuration)
        let bad = ConnectionHarness.frame([UInt8](repeating: 7, count: 16_000), flag: 1)
        for _ in 0..<8 {
            let id = try h.request(ConnectionHarness.grpcHeaders(path: Self.unary), body: bad)
            try await h.pump { h.closed(id) }
            #expect(h.responses[id]?.grpcStatus == 13)
        }
        let good = ConnectionHarness.frame(try Grpc_Testing_SimpleRequest.with {
            $0.responseSize = 1
            $0.payload = .with { $0.body = [UInt8](repeating: 1, count: 16_000) }
        }.serializedBytes())
        let id = try h.request(ConnectionHarness.grpcHeaders(path: Self.unary), body: good)
        try await h.pump { h.closed(id) }
        #expect(h.responses[id]?.grpcStatus == 0)
        try await h.close()
    }

    @Test func unaryWithTwoMessagesOrNoneIsUnimplemented() async throws {
        let h = try await ConnectionHarness(services: [InteropTestService()])
        let two = try h.request(ConnectionHarness.grpcHeaders(path: Self.unary), body: try simpleRequest(responseSize: 1) + simpleRequest(responseSize: 1))
        let none = try h.request(ConnectionHarness.grpcHeaders(path: Self.unary), body: [])
        try await h.pump { h.closed(two) && h.closed(none) }
        #expect(h.responses[two]?.grpcStatus == 12 && h.responses[none]?.grpcStatus == 12)
        try await h.close()
    }

    @Test func headerListOverTheLimitResetsTheStream() async throws {
        let h = try await ConnectionHarness(services: [InteropTestService()], configuration: .defaults { $0.maxHeaderListSize = 2000 })
        let id = try h.request(ConnectionHarness.grpcHeaders(path: Self.unary, extra: [("x-big", String(repeating: "a", count: 3000))]))
        try await h.pump { h.closed(id) }
        #expect(h.responses[id]?.closedWith == NGHTTP2Session.ErrorCode.frameSizeError.rawValue)
        #expect(h.responses[id]?.headerBlocks.isEmpty == true)
        try await h.close()
    }

    @Test func resetMidStreamCancelsTheHandler() async throws {
        let cancelled = Flag()
        let h = try await ConnectionHarness(services: [WaitingService(cancelled: cancelled)])
        let id = try h.request(ConnectionHarness.grpcHeaders(path: WaitingService.path), body: ConnectionHarness.frame([]), end: false)
        try await h.pump(until: { false }, timeoutIsFine: true)
        h.reset(stream: id)
        try await h.pump { cancelled.isSet }
        try await h.close()
    }

    @Test func deadlineExpiryMidStream() async throws {
        let h = try await ConnectionHarness(services: [InteropTestService()])
        let id = try h.request(ConnectionHarness.grpcHeaders(path: Self.fullDuplex, extra: [("grpc-timeout", "50m")]), body: [], end: false)
        try await h.pump(until: { false }, timeoutIsFine: true)
        #expect(!h.closed(id))
        // The testing event loop's clock only moves when told to.
        await h.channel.testingEventLoop.advanceTime(by: .milliseconds(60))
        try await h.pump { h.closed(id) }
        #expect(h.responses[id]?.grpcStatus == 4)
        // The client had not half-closed: the trailers are followed by RST_STREAM(NO_ERROR) (RFC 9113 §8.1, as grpc-go does).
        #expect(h.responses[id]?.closedWith == 0)
        try await h.close()
    }

    /// The server's limit on a call's duration ends a call without a deadline, and cuts a longer deadline short;
    /// a shorter deadline is the client's own.
    @Test func theMaximumCallDurationEndsCallsWithoutOrWithALongerDeadline() async throws {
        let h = try await ConnectionHarness(services: [InteropTestService()], configuration: .defaults { $0.maxCallDuration = .seconds(60) })
        let none = try h.request(ConnectionHarness.grpcHeaders(path: Self.fullDuplex), body: [], end: false)
        let longer = try h.request(ConnectionHarness.grpcHeaders(path: Self.fullDuplex, extra: [("grpc-timeout", "2H")]), body: [], end: false)
        let shorter = try h.request(ConnectionHarness.grpcHeaders(path: Self.fullDuplex, extra: [("grpc-timeout", "30S")]), body: [], end: false)
        try await h.pump(until: { false }, timeoutIsFine: true)
        await h.channel.testingEventLoop.advanceTime(by: .seconds(31))
        try await h.pump { h.closed(shorter) }
        #expect(h.responses[shorter]?.grpcMessage == "deadline exceeded")
        #expect(!h.closed(none) && !h.closed(longer))
        await h.channel.testingEventLoop.advanceTime(by: .seconds(30))
        try await h.pump { h.closed(none) && h.closed(longer) }
        for id in [none, longer] {
            #expect(h.responses[id]?.grpcStatus == 4)
            #expect(h.responses[id]?.grpcMessage == "the call reached the server's limit of 60 s")
        }
        try await h.close()
    }

    /// A bidi call keeps answering while the client has not half-closed, and ends OK after it does.
    @Test func halfCloseEndsTheCall() async throws {
        let h = try await ConnectionHarness(services: [InteropTestService()])
        let request = ConnectionHarness.frame(try Grpc_Testing_StreamingOutputCallRequest.with {
            $0.responseParameters = [.with { $0.size = 5 }]
        }.serializedBytes())
        let id = try h.request(ConnectionHarness.grpcHeaders(path: Self.fullDuplex), body: request, end: false)
        let responseSize = 5 + (try Grpc_Testing_StreamingOutputCallResponse.with {
            $0.payload = .with { $0.body = [UInt8](repeating: 0, count: 5) }
        }.serializedSize())
        try await h.pump { (h.responses[id]?.data.count ?? 0) >= responseSize }
        #expect(!h.closed(id))
        h.send(stream: id, request, end: true)
        try await h.pump { h.closed(id) }
        #expect(h.responses[id]?.grpcStatus == 0)
        #expect(h.responses[id]?.data.count == 2 * responseSize)
        try await h.close()
    }
}

/// HEADERS and RST_STREAM in one read, over and over (the rapid reset attack, CVE-2023-44487): such a stream
/// must not start its handler, which would run its interceptors and handler for no one.
@Suite("rapid reset")
struct RapidResetTests {
    struct StartRecordingService: RPCService {
        static let descriptor = MethodDescriptor(service: .init(fullyQualifiedName: "test.Recording"), method: "Wait", kind: .bidirectionalStreaming)
        let started: Flag

        func registerMethods(with router: inout RPCRouter) {
            let started = self.started
            router.register(Self.descriptor) { _, _ in
                started.set()
                try await Task.sleep(for: .seconds(30))
            }
        }
    }

    @Test func aStreamResetInTheReadThatOpenedItStartsNoHandler() async throws {
        let started = Flag()
        let h = try await ConnectionHarness(services: [StartRecordingService(started: started)])
        let headers = ConnectionHarness.grpcHeaders(path: "/test.Recording/Wait")
        try await h.pump(until: { false }, timeoutIsFine: true)  // the connection preface
        // The client's HEADERS, then its RST_STREAM, handed to the server in one read.
        let reset = try h.request(headers, body: [], end: false)
        var read = ByteBuffer()
        try h.client.send { read.writeBytes($0) }
        h.reset(stream: reset)
        try h.client.send { read.writeBytes($0) }
        try await h.channel.writeInbound(read)
        try await h.pump(until: { false }, timeoutIsFine: true)
        #expect(h.closed(reset))
        #expect(h.handlers.total == 0, "no task was started for it")
        // A stream that stays open does start its handler.
        let open = try h.request(headers, body: [], end: false)
        try await h.pump { started.isSet }
        #expect(h.handlers.total == 1)
        h.reset(stream: open)
        try await h.pump { h.closed(open) }
        try await h.close()
    }
}

/// How long a connection lives (grpc-go's keepalive.ServerParameters), on the event loop's clock.
@Suite("connection lifetime limits")
struct ConnectionLifetimeTests {
    func harness(_ configure: (inout GRPCServerConfiguration) -> Void) async throws -> ConnectionHarness {
        var configuration = GRPCServerConfiguration.defaults
        configure(&configuration)
        return try await ConnectionHarness(services: [InteropTestService()], configuration: configuration)
    }

    /// A half-sent preface held the connection forever.
    @Test func aConnectionWithoutItsPrefaceIsClosed() async throws {
        let silent = try await harness { $0.handshakeTimeout = .seconds(10) }
        await silent.channel.testingEventLoop.advanceTime(by: .seconds(9))
        #expect(silent.channel.isActive)
        await silent.channel.testingEventLoop.advanceTime(by: .seconds(2))
        #expect(!silent.channel.isActive)
        try await silent.close()

        let greeted = try await harness { $0.handshakeTimeout = .seconds(10) }
        try await greeted.pump(until: { false }, timeoutIsFine: true)
        await greeted.channel.testingEventLoop.advanceTime(by: .seconds(11))
        #expect(greeted.channel.isActive)
        try await greeted.close()
    }

    /// HEADERS without END_HEADERS, then silence (slowloris): nothing else may come on the connection until
    /// the block ends, so it is closed after the handshake timeout instead of being held for good.
    @Test func anUnfinishedHeaderBlockDoesNotHoldTheConnection() async throws {
        let h = try await harness { $0.handshakeTimeout = .seconds(10) }
        try await h.pump(until: { false }, timeoutIsFine: true)
        // Stream 1, flags 0 (no END_HEADERS), a block of static-table entries only (:method POST, :scheme http, :path /).
        let headers: [UInt8] = [0, 0, 3, 1, 0, 0, 0, 0, 1, 0x83, 0x86, 0x84]
        try await h.channel.writeInbound(ByteBuffer(bytes: headers))
        await h.channel.testingEventLoop.advanceTime(by: .seconds(9))
        #expect(h.channel.isActive)
        await h.channel.testingEventLoop.advanceTime(by: .seconds(2))
        #expect(!h.channel.isActive)
        try await h.close()
    }

    @Test func anIdleConnectionGetsAGracefulGoAway() async throws {
        let h = try await harness { $0.maxConnectionIdle = .seconds(60) }
        let id = try h.request(ConnectionHarness.grpcHeaders(path: ServerConnectionTests.unary), body: ServerConnectionTests().simpleRequest(responseSize: 1))
        try await h.pump { h.closed(id) }
        await h.channel.testingEventLoop.advanceTime(by: .seconds(30))
        let open = try h.request(ConnectionHarness.grpcHeaders(path: ServerConnectionTests.fullDuplex), body: [], end: false)
        try await h.pump(until: { false }, timeoutIsFine: true)
        // A stream is open: not idle, however long it lasts.
        await h.channel.testingEventLoop.advanceTime(by: .seconds(120))
        try await h.pump(until: { false }, timeoutIsFine: true)
        #expect(h.goAway == nil)
        h.send(stream: open, [], end: true)
        try await h.pump { h.closed(open) }
        await h.channel.testingEventLoop.advanceTime(by: .seconds(61))
        try await h.pump { h.goAway != nil }
        #expect(h.goAway?.errorCode == 0)
        try await h.close()
    }

    @Test func anOldConnectionGetsAGracefulGoAway() async throws {
        let h = try await harness { $0.maxConnectionAge = .seconds(100) }
        try await h.pump(until: { false }, timeoutIsFine: true)
        await h.channel.testingEventLoop.advanceTime(by: .seconds(89))
        try await h.pump(until: { false }, timeoutIsFine: true)
        #expect(h.goAway == nil)
        await h.channel.testingEventLoop.advanceTime(by: .seconds(22))  // past the jitter's +10%
        try await h.pump { h.goAway != nil }
        #expect(h.goAway?.errorCode == 0)
        try await h.close()
    }

    @Test func aPeerThatAnswersNoKeepalivePingIsClosed() async throws {
        let h = try await harness { $0.keepalive.time = .seconds(60); $0.keepalive.timeout = .seconds(10) }
        try await h.pump(until: { false }, timeoutIsFine: true)
        // Quiet for a minute: a PING. The client answers it (nghttp2 ACKs pings): the connection stays.
        await h.channel.testingEventLoop.advanceTime(by: .seconds(61))
        try await h.pump { h.pingsReceived == 1 }
        try await h.flushClient()
        await h.channel.testingEventLoop.advanceTime(by: .seconds(11))
        #expect(h.channel.isActive)
        // Another quiet minute, and this time the client is silent.
        await h.channel.testingEventLoop.advanceTime(by: .seconds(61))
        await h.channel.testingEventLoop.advanceTime(by: .seconds(11))
        #expect(!h.channel.isActive)
        try await h.close()
    }
}

/// Plain HTTP (download links): a peer that never reads a response must not hold its body (an open file) for
/// as long as it stays connected.
@Suite("plain HTTP responses")
struct PlainHTTPResponseTests {
    /// A body without end; `released` is set when the server lets go of it.
    struct EndlessBody: PlainHTTPHandler {
        final class Holder: Sendable {
            let released: Flag
            init(_ released: Flag) { self.released = released }
            deinit { released.set() }
        }

        let released: Flag

        func respond(to request: PlainHTTPRequest) async -> PlainHTTPResponse {
            let holder = Holder(released)
            return PlainHTTPResponse(status: 200, body: { _ = holder; return [UInt8](repeating: 1, count: 16 << 10) })
        }
    }

    @Test func aResponseNobodyReadsIsResetAndItsBodyReleased() async throws {
        let released = Flag()
        let h = try await ConnectionHarness(services: [], plainHTTP: EndlessBody(released: released))
        h.grantsWindow = false
        let id = try h.request([(":method", "GET"), (":scheme", "http"), (":path", "/x"), (":authority", "test")])
        try await h.pump { (h.responses[id]?.data.count ?? 0) >= 1 << 20 }
        // The window (the client's 1 MiB) is shut. One check period sees the bytes sent before; the next sees none since: reset.
        await h.channel.testingEventLoop.advanceTime(by: .seconds(30))
        try await h.pump(until: { false }, timeoutIsFine: true)
        #expect(h.responses[id]?.closedWith == nil, "the first check saw progress")
        await h.channel.testingEventLoop.advanceTime(by: .seconds(30))
        try await h.pump { h.responses[id]?.closedWith != nil }
        #expect(h.responses[id]?.closedWith == NGHTTP2Session.ErrorCode.cancel.rawValue)
        let deadline = ContinuousClock.now + .seconds(5)
        while !released.isSet, ContinuousClock.now < deadline { try await Task.sleep(for: .milliseconds(5)) }
        #expect(released.isSet, "the body (and what it holds) is let go")
        try await h.close()
    }

    @Test func aResponseReadSlowlyIsNotReset() async throws {
        let released = Flag()
        let h = try await ConnectionHarness(services: [], plainHTTP: EndlessBody(released: released))
        h.grantsWindow = false
        let id = try h.request([(":method", "GET"), (":scheme", "http"), (":path", "/x"), (":authority", "test")])
        // The client's stream window is 1 MiB; nghttp2 sends a WINDOW_UPDATE once half of it was consumed.
        try await h.pump { (h.responses[id]?.data.count ?? 0) >= 1 << 20 }
        for _ in 1...4 {
            // Some of the window given back each period: progress, however slow.
            let before = h.responses[id]?.data.count ?? 0
            h.client.consume(stream: id, bytes: 1 << 19)
            try await h.pump { (h.responses[id]?.data.count ?? 0) >= before + (1 << 19) }
            await h.channel.testingEventLoop.advanceTime(by: .seconds(30))
        }
        try await h.pump(until: { false }, timeoutIsFine: true)
        #expect(h.responses[id]?.closedWith == nil)
        h.reset(stream: id)
        try await h.pump { h.responses[id]?.closedWith != nil }
        try await h.close()
    }
}

final class Counter: Sendable {
    private let count = Mutex(0)
    var value: Int { count.withLock { $0 } }
    func add(_ n: Int) { count.withLock { $0 += n } }
}

final class Flag: Sendable {
    private let value = Mutex(false)
    var isSet: Bool { value.withLock { $0 } }
    func set() { value.withLock { $0 = true } }
}

@Suite("graceful shutdown (gRPC proposal A9, nghttp2 programmers' guide)")
struct GracefulShutdownTests {
    /// The client's PING ACK arrives inside nghttp2's receive callback and triggers the final GOAWAY; the
    /// handler must not write from inside that callback. (Regression: it did, and the re-entrancy check
    /// stopped the process.)
    @Test func finalGoAwayFollowsThePingAckWithoutReentering() async throws {
        let h = try await ConnectionHarness(services: [InteropTestService()])
        let id = try h.request(ConnectionHarness.grpcHeaders(path: ServerConnectionTests.fullDuplex), body: [], end: false)
        try await h.pump(until: { false }, timeoutIsFine: true)
        h.channel.pipeline.fireUserInboundEventTriggered(GracefulShutdownEvent())
        try await h.pump { h.goAway?.lastStreamID == id }
        #expect(h.goAway?.errorCode == 0)
        // The open call still completes; then the server closes the connection.
        h.send(stream: id, [], end: true)
        try await h.pump { h.closed(id) }
        #expect(h.responses[id]?.grpcStatus == 0)
        try await h.close()
    }
}

@Suite("keepalive ping policy (gRPC doc/keepalive.md)")
struct PingPolicyTests {
    /// grpc-go probes bandwidth with PINGs while a stream moves data; sending data forgives them.
    /// (Regression: strikes were only forgiven by new RPCs, so grpc-go's ping_pong got GOAWAY.)
    @Test func pingsWhileDataFlowsAreFine() async throws {
        let h = try await ConnectionHarness(services: [InteropTestService()])
        let request = ConnectionHarness.frame(try Grpc_Testing_StreamingOutputCallRequest.with {
            $0.responseParameters = [.with { $0.size = 10 }]
        }.serializedBytes())
        let id = try h.request(ConnectionHarness.grpcHeaders(path: ServerConnectionTests.fullDuplex), body: request, end: false)
        for round in 1...6 {
            h.client.submitPing(opaqueData: UInt64(round))
            h.send(stream: id, request, end: round == 6)
            let expected = round * 19
            try await h.pump { (h.responses[id]?.data.count ?? 0) >= expected }
        }
        try await h.pump { h.closed(id) }
        #expect(h.goAway == nil)
        #expect(h.responses[id]?.grpcStatus == 0)
        try await h.close()
    }

    @Test func tooManyPingsGetGoAway() async throws {
        let h = try await ConnectionHarness(services: [InteropTestService()])
        for round in 1...4 { h.client.submitPing(opaqueData: UInt64(round)) }
        try await h.pump { h.goAway != nil }
        #expect(h.goAway?.errorCode == NGHTTP2Session.ErrorCode.enhanceYourCalm.rawValue)
        try await h.close()
    }
}

/// Reads nothing until `open` is set, then every request message, and answers with their total size (8 bytes).
struct GatedSinkService: RPCService {
    static let path = "/test.Sink/Drain"
    let open: Flag

    func registerMethods(with router: inout RPCRouter) {
        let open = self.open
        router.register(MethodDescriptor(service: .init(fullyQualifiedName: "test.Sink"), method: "Drain", kind: .bidirectionalStreaming)) { stream, _ in
            while !open.isSet { try await Task.sleep(for: .milliseconds(2)) }
            var total = 0
            for try await message in stream.inbound { total += message.count }
            try await stream.outbound.write(withUnsafeBytes(of: UInt64(total).bigEndian, Array.init))
        }
    }
}

/// Waits until cancelled, and records that it was.
struct WaitingService: RPCService {
    static let path = "/test.Waiting/Wait"
    let cancelled: Flag

    func registerMethods(with router: inout RPCRouter) {
        let cancelled = self.cancelled
        router.register(MethodDescriptor(service: .init(fullyQualifiedName: "test.Waiting"), method: "Wait", kind: .bidirectionalStreaming)) { _, _ in
            do {
                try await Task.sleep(for: .seconds(30))
            } catch {
                cancelled.set()
                throw error
            }
        }
    }
}

extension ConnectionHarness {
    /// Pumps for a while without a condition (lets the RPC start).
    func pump(until done: () -> Bool, timeoutIsFine: Bool) async throws {
        do {
            try await pump(until: done, timeout: .milliseconds(200))
        } catch is HarnessTimeout where timeoutIsFine {}
    }
}

@Suite("connection receive budget (bytes given back before the handler read them)")
struct ReceiveBudgetTests {
    /// Four times the stream window: such a message must be given back before it is read.
    static let messageSize = 256 << 10

    func harness(connectionWindow: Int32, open: Flag) async throws -> ConnectionHarness {
        var configuration = GRPCServerConfiguration.defaults
        configuration.streamWindowSize = 64 << 10
        configuration.connectionWindowSize = connectionWindow
        configuration.maxReceiveMessageSize = Self.messageSize
        // Room for two whole messages, not three.
        configuration.maxConnectionBufferedBytes = 2 * (Self.messageSize + 5) + 100
        return try await ConnectionHarness(services: [GatedSinkService(open: open)], configuration: configuration)
    }

    func sentBytes(_ h: ConnectionHarness, _ ids: [Int32]) -> [Int] { ids.map { h.bodies[$0]!.offset } }

    /// Four streams each send a message four times their window while no handler reads. Each message
    /// larger than the window has to be given back before it is read, and that used to be done for every
    /// stream, so one connection could hold a maximum-size message per stream. Now two messages fill the
    /// budget; the other two streams wait with a window's worth each, and go on, in turn, once the handlers
    /// read: every call completes.
    @Test func largeMessagesBeyondTheBudgetWaitForHandlersToRead() async throws {
        let open = Flag()
        let h = try await harness(connectionWindow: 1 << 20, open: open)
        let body = ConnectionHarness.frame([UInt8](repeating: 3, count: Self.messageSize))
        let ids = try (0..<4).map { _ in try h.request(ConnectionHarness.grpcHeaders(path: GatedSinkService.path), body: body) }
        try await h.pump(until: { sentBytes(h, ids).filter { $0 == body.count }.count >= 2 })
        try await h.pump(until: { false }, timeoutIsFine: true)  // time for more to move, which must not
        let sent = sentBytes(h, ids).sorted()
        #expect(sent[2...] == [body.count, body.count], "two messages are taken whole")
        #expect(sent[..<2].allSatisfy { $0 <= 64 << 10 }, "the others wait with at most their window: \(sent)")

        open.set()
        try await h.pump(until: { ids.allSatisfy(h.closed) })
        for id in ids {
            let r = try #require(h.responses[id])
            #expect(r.grpcStatus == 0)
            #expect(r.data.dropFirst(5).reduce(0) { $0 << 8 | Int($1) } == Self.messageSize)
        }
        try await h.close()
    }

    /// Streams waiting for the budget hold their bytes in the connection window, which the streams holding
    /// the budget need to finish: the line may take half of it. A stream beyond that is RESOURCE_EXHAUSTED,
    /// and the rest still complete.
    @Test func aStreamBeyondTheLineIsResourceExhausted() async throws {
        let open = Flag()
        let h = try await harness(connectionWindow: 128 << 10, open: open)  // a line of one window
        let body = ConnectionHarness.frame([UInt8](repeating: 3, count: Self.messageSize))
        let ids = try (0..<4).map { _ in try h.request(ConnectionHarness.grpcHeaders(path: GatedSinkService.path), body: body) }
        try await h.pump(until: { ids.contains(where: h.closed) })
        open.set()
        try await h.pump(until: { ids.allSatisfy(h.closed) })
        let statuses = ids.map { h.responses[$0]?.grpcStatus }
        #expect(statuses.filter { $0 == 0 }.count == 3, "\(statuses)")
        let refused = try #require(ids.first { h.responses[$0]?.grpcStatus == 8 })
        #expect(h.responses[refused]?.grpcMessage?.contains("partly received request messages") == true)
        try await h.close()
    }

    /// The first in line resets: the line is served again, and a stream behind it that fits goes on at once
    /// rather than when some handler next reads. (Found in review: the line kept the reset stream's place.)
    @Test func whenTheFirstInLineLeavesTheNextIsServed() async throws {
        let open = Flag()
        var configuration = GRPCServerConfiguration.defaults
        configuration.streamWindowSize = 64 << 10
        configuration.connectionWindowSize = 1 << 20
        configuration.maxReceiveMessageSize = Self.messageSize
        configuration.maxConnectionBufferedBytes = Self.messageSize + 150 << 10
        let h = try await ConnectionHarness(services: [GatedSinkService(open: open)], configuration: configuration)
        let large = ConnectionHarness.frame([UInt8](repeating: 3, count: Self.messageSize))
        let medium = ConnectionHarness.frame([UInt8](repeating: 4, count: 128 << 10))
        let holder = try h.request(ConnectionHarness.grpcHeaders(path: GatedSinkService.path), body: large)
        try await h.pump(until: { h.bodies[holder]!.offset == large.count })
        let first = try h.request(ConnectionHarness.grpcHeaders(path: GatedSinkService.path), body: large)
        try await h.pump(until: { false }, timeoutIsFine: true)
        #expect(h.bodies[first]!.offset < large.count, "waits: the budget holds one large message")
        let next = try h.request(ConnectionHarness.grpcHeaders(path: GatedSinkService.path), body: medium)
        try await h.pump(until: { false }, timeoutIsFine: true)
        #expect(h.bodies[next]!.offset < medium.count, "fits, but waits behind the first in line")
        h.reset(stream: first)
        try await h.pump(until: { h.bodies[next]!.offset == medium.count })
        open.set()
        try await h.pump(until: { [holder, next].allSatisfy(h.closed) })
        #expect(h.responses[holder]?.grpcStatus == 0 && h.responses[next]?.grpcStatus == 0)
        try await h.close()
    }

    /// A stream reset while it holds a reservation gives it back, so a waiting stream goes on.
    @Test func aResetStreamReleasesItsReservation() async throws {
        let open = Flag()
        let h = try await harness(connectionWindow: 1 << 20, open: open)
        let body = ConnectionHarness.frame([UInt8](repeating: 3, count: Self.messageSize))
        let ids = try (0..<3).map { _ in try h.request(ConnectionHarness.grpcHeaders(path: GatedSinkService.path), body: body) }
        try await h.pump(until: { sentBytes(h, ids).filter { $0 == body.count }.count == 2 })
        let waiting = try #require(ids.first { h.bodies[$0]!.offset < body.count })
        let holders = ids.filter { $0 != waiting }
        h.reset(stream: holders[0])
        try await h.pump(until: { h.bodies[waiting]!.offset == body.count })
        open.set()
        try await h.pump(until: { [waiting, holders[1]].allSatisfy(h.closed) })
        #expect(h.responses[waiting]?.grpcStatus == 0 && h.responses[holders[1]]?.grpcStatus == 0)
        try await h.close()
    }
}

/// Answers a request of `count` (8 bytes, big-endian; 0: without end) with that many messages of
/// `messageSize` bytes, and counts the bytes it handed to the writer.
struct SourceService: RPCService {
    static let path = "/test.Source/Emit"
    static let messageSize = 16 << 10
    let written: Counter

    func registerMethods(with router: inout RPCRouter) {
        let written = self.written
        router.register(MethodDescriptor(service: .init(fullyQualifiedName: "test.Source"), method: "Emit", kind: .serverStreaming)) { stream, _ in
            var count = 0
            for try await request in stream.inbound { count = request.reduce(0) { $0 << 8 | Int($1) } }
            let message = [UInt8](repeating: 7, count: Self.messageSize)
            var sent = 0
            while count == 0 || sent < count {
                written.add(message.count)
                try await stream.outbound.write(message)
                sent += 1
            }
        }
    }

    static func request(count: UInt64) -> [UInt8] {
        ConnectionHarness.frame(withUnsafeBytes(of: count.bigEndian, Array.init))
    }
}

@Suite("connection send budget (response bytes queued across streams)")
struct SendBudgetTests {
    static let streams = 8
    static let budget = 256 << 10
    /// The client's stream window: what each stream sends before it stalls.
    static let clientWindow: UInt32 = 64 << 10

    func harness(written: Counter, budget: Int = Self.budget) async throws -> ConnectionHarness {
        var configuration = GRPCServerConfiguration.defaults
        configuration.maxConnectionSendBufferedBytes = budget
        var client = NGHTTP2Session.Settings()
        client.initialWindowSize = Self.clientWindow
        let h = try await ConnectionHarness(services: [SourceService(written: written)], configuration: configuration, clientSettings: client)
        h.grantsWindow = false
        return h
    }

    /// Opens `streams` endless streams the client does not read, and waits until each has filled the
    /// client's window and its writer had time to run on.
    func stalledStreams(_ h: ConnectionHarness) async throws -> [Int32] {
        let ids = try (0..<Self.streams).map { _ in
            try h.request(ConnectionHarness.grpcHeaders(path: SourceService.path), body: SourceService.request(count: 0))
        }
        try await h.pump(until: { ids.allSatisfy { h.responses[$0]?.data.count == Int(Self.clientWindow) } })
        try await h.pump(until: { false }, timeoutIsFine: true)
        return ids
    }

    /// Eight streams whose client reads nothing: each could queue its 1 MiB (8 MiB in all). Now the writers
    /// stop once the connection holds the budget, each with at most one more message queued.
    @Test func streamsNobodyReadsHoldTheBudgetNotAStreamBufferEach() async throws {
        let written = Counter()
        let h = try await harness(written: written)
        let ids = try await stalledStreams(h)
        let sentToClient = Self.streams * Int(Self.clientWindow)
        let bound = sentToClient + Self.budget + Self.streams * (SourceService.messageSize + 5)
        let total = written.value
        #expect(total <= bound, "\(total) bytes written; at most \(bound)")
        #expect(total > sentToClient + Self.budget - Self.streams * (SourceService.messageSize + 5), "the budget fills: \(total)")
        for id in ids { h.reset(stream: id) }
        try await h.pump(until: { ids.allSatisfy(h.closed) })
        try await h.close()
    }

    /// With the budget held by streams nobody reads, a stream that is read still completes (one message
    /// at a time); and once the stalled streams are reset their bytes leave the budget.
    @Test func aStreamThatIsReadGoesOnWhileOthersHoldTheBudget() async throws {
        let written = Counter()
        let h = try await harness(written: written)
        let stalled = try await stalledStreams(h)
        let count = 64  // 1 MiB: more than the budget
        let read = try h.request(ConnectionHarness.grpcHeaders(path: SourceService.path), body: SourceService.request(count: UInt64(count)))
        h.readStreams.insert(read)
        try await h.pump(until: { h.closed(read) })
        #expect(h.responses[read]?.grpcStatus == 0)
        #expect(h.responses[read]?.data.count == count * (SourceService.messageSize + 5))

        for id in stalled { h.reset(stream: id) }
        try await h.pump(until: { stalled.allSatisfy(h.closed) })
        let after = written.value
        let again = try h.request(ConnectionHarness.grpcHeaders(path: SourceService.path), body: SourceService.request(count: 0))
        try await h.pump(until: { h.responses[again]?.data.count == Int(Self.clientWindow) })
        try await h.pump(until: { false }, timeoutIsFine: true)
        // Alone on the connection, a stalled stream queues the whole budget (had the reset streams' bytes
        // stayed in it, one message).
        #expect(written.value - after > Self.budget, "the reset streams' bytes left the budget")
        h.reset(stream: again)
        try await h.pump(until: { h.closed(again) })
        try await h.close()
    }
}
