import Logging
import NIOCore
import NIOEmbedded
@testable import RPCHTTP2
import RPCCore

/// A server connection handler on an `NIOAsyncTestingChannel`, talked to by an nghttp2 client session in
/// the test: the whole server-side state machine, no sockets.
final class ConnectionHarness: NGHTTP2SessionDelegate, @unchecked Sendable {
    struct Response {
        var headerBlocks: [[(name: String, value: String)]] = []
        var data: [UInt8] = []
        var closedWith: UInt32?
        var pendingHeaders: [(name: String, value: String)] = []

        var headers: [(name: String, value: String)] { headerBlocks.first ?? [] }
        var trailers: [(name: String, value: String)] { headerBlocks.count > 1 ? headerBlocks.last! : headerBlocks.first ?? [] }
        func header(_ name: String, inTrailers: Bool = false) -> String? {
            (inTrailers ? trailers : headers).first { $0.name == name }?.value
        }
        var grpcStatus: Int? { header("grpc-status", inTrailers: true).flatMap(Int.init) }
        /// `grpc-message` as sent (percent-encoded; plain for ASCII without `%`).
        var grpcMessage: String? { header("grpc-message", inTrailers: true) }
    }

    let channel: NIOAsyncTestingChannel
    private(set) var client: NGHTTP2Session!
    var responses: [Int32: Response] = [:]
    var bodies: [Int32: (bytes: [UInt8], offset: Int, end: Bool)] = [:]
    /// DATA frame payloads are cut to this size, to split messages across frames.
    var maxDataChunk = Int.max
    var goAway: (lastStreamID: Int32, errorCode: UInt32)?
    /// PINGs from the server (the client session ACKs them on its next send).
    var pingsReceived = 0
    /// False: received DATA is never given back, so the server's send window shuts (a client that stops reading).
    var grantsWindow = true
    /// Streams whose DATA is given back even when `grantsWindow` is false.
    var readStreams: Set<Int32> = []

    /// The server's handler tasks.
    let handlers = RunningHandlers()

    init(
        services: [any RPCService], plainHTTP: (any PlainHTTPHandler)? = nil, configuration: GRPCServerConfiguration = .defaults,
        clientSettings: NGHTTP2Session.Settings = .init()
    ) async throws {
        let router = RPCRouter(services: services)
        channel = NIOAsyncTestingChannel()
        try await channel.eventLoop.submit { [channel, handlers] in
            try channel.pipeline.syncOperations.addHandler(
                ServerConnectionHandler(
                    router: router, plainHTTP: plainHTTP, configuration: configuration, logger: Logger(label: "test"), handlers: handlers
                )
            )
        }.get()
        try await channel.connect(to: SocketAddress(ipAddress: "127.0.0.1", port: 1))
        client = try NGHTTP2Session(role: .client, settings: clientSettings, delegate: self)
    }

    static func grpcHeaders(path: String, extra: [(String, String)] = []) -> [(String, String)] {
        [(":method", "POST"), (":scheme", "http"), (":path", path), (":authority", "test"),
         ("content-type", "application/grpc"), ("te", "trailers")] + extra
    }

    static func frame(_ message: [UInt8], flag: UInt8 = 0) -> [UInt8] {
        [flag] + withUnsafeBytes(of: UInt32(message.count).bigEndian, Array.init) + message
    }

    /// Opens a stream with `headers` and `body` (sent as DATA, then END_STREAM if `end`).
    func request(_ headers: [(String, String)], body: [UInt8] = [], end: Bool = true) throws -> Int32 {
        let id = try client.submitRequest(headers)
        bodies[id] = (body, 0, end)
        return id
    }

    func send(stream: Int32, _ bytes: [UInt8], end: Bool) {
        bodies[stream, default: ([], 0, false)].bytes += bytes
        bodies[stream]!.end = end
        client.resumeData(stream: stream)
    }

    func reset(stream: Int32) {
        client.resetStream(stream, code: .cancel)
    }

    /// Moves bytes both ways until `done` holds (RPC tasks run concurrently, so it polls). `timeout` only
    /// tells a stall from slowness: under AddressSanitizer, with the whole suite starting at once, every test
    /// of the first wave took 10 to 12 s (a suite of e-mail parsing tests 11.2 s), and a unary round trip
    /// failed a 5 s limit.
    func pump(until done: () -> Bool, timeout: Duration = .seconds(30)) async throws {
        let deadline = ContinuousClock.now + timeout
        while true {
            // Handler tasks run on the connection's event loop, and a testing loop runs what was scheduled
            // from inside itself only when asked.
            await channel.testingEventLoop.run()
            var moved = false
            var out = ByteBuffer()
            try client.send { out.writeBytes($0) }
            if out.readableBytes > 0 {
                try await channel.writeInbound(out)
                moved = true
            }
            while let bytes = try await channel.readOutbound(as: ByteBuffer.self) {
                try bytes.withUnsafeReadableBytes { try client.receive($0) }
                moved = true
            }
            if done() { return }
            if ContinuousClock.now > deadline { throw HarnessTimeout() }
            if !moved { try await Task.sleep(for: .milliseconds(2)) }
        }
    }

    func closed(_ stream: Int32) -> Bool { responses[stream]?.closedWith != nil }

    /// Hands the server whatever the client session has queued (e.g. a PING ACK), once.
    func flushClient() async throws {
        var out = ByteBuffer()
        try client.send { out.writeBytes($0) }
        if out.readableBytes > 0 { try await channel.writeInbound(out) }
    }

    /// Closes the channel, which removes the handler (and so frees the connection's state).
    func close() async throws {
        // Let pending timers (grace periods, delayed closes) run, so nothing stays scheduled.
        await channel.testingEventLoop.advanceTime(by: .seconds(60))
        do {
            try await channel.close()
        } catch ChannelError.alreadyClosed {
            // The server closed it (after GOAWAY).
        }
        await channel.testingEventLoop.shutdownGracefully()
    }

    struct HarnessTimeout: Error {}

    // MARK: NGHTTP2SessionDelegate (client side)

    func beginHeaders(stream: Int32) {}

    func header(stream: Int32, name: UnsafeRawBufferPointer, value: UnsafeRawBufferPointer) -> HeaderVerdict {
        responses[stream, default: Response()].pendingHeaders.append(
            (String(decoding: name, as: UTF8.self), String(decoding: value, as: UTF8.self)))
        return .accept
    }

    func headersComplete(stream: Int32, endStream: Bool) {
        responses[stream, default: Response()].headerBlocks.append(responses[stream]!.pendingHeaders)
        responses[stream]!.pendingHeaders = []
    }

    func data(stream: Int32, bytes: UnsafeRawBufferPointer) {
        responses[stream, default: Response()].data += bytes
        if grantsWindow || readStreams.contains(stream) { client.consume(stream: stream, bytes: bytes.count) }
    }

    func dataEnded(stream: Int32) {}

    func streamClosed(stream: Int32, errorCode: UInt32) {
        responses[stream, default: Response()].closedWith = errorCode
    }

    func endStreamHeadersSent(stream: Int32) {}

    func readData(stream: Int32, into buffer: UnsafeMutableRawBufferPointer) -> NGHTTP2Session.DataReadResult {
        guard var body = bodies[stream] else { return .end(0, trailers: nil) }
        let n = min(buffer.count, maxDataChunk, body.bytes.count - body.offset)
        body.bytes.withUnsafeBytes { buffer.copyMemory(from: UnsafeRawBufferPointer(rebasing: $0[body.offset..<body.offset + n])) }
        body.offset += n
        bodies[stream] = body
        if body.offset == body.bytes.count {
            return body.end ? .end(n, trailers: nil) : (n > 0 ? .bytes(n) : .deferred)
        }
        return .bytes(n)
    }

    func goAwayReceived(lastStreamID: Int32, errorCode: UInt32) {
        goAway = (lastStreamID, errorCode)
    }

    func pingAckReceived(opaqueData: UInt64) {}
    func pingReceived() { pingsReceived += 1 }
}
