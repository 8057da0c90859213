import NIOCore
@testable import RPCHTTP2
import RPCCore
import Synchronization
import Testing

@Suite("gRPC wire pieces")
struct WireFormatTests {
    @Test(arguments: [
        ("1S", Duration.seconds(1)), ("100m", .milliseconds(100)), ("5u", .microseconds(5)), ("7n", .nanoseconds(7)),
        ("2M", .seconds(120)), ("1H", .seconds(3600)), ("99999999S", .seconds(99_999_999)),
    ])
    func timeoutParses(text: String, duration: Duration) {
        #expect(GRPCTimeout.parse(text) == duration)
    }

    @Test(arguments: ["", "S", "1", "1s", "123456789S", "-1S", "1.5S", " 1S", "1x"])
    func malformedTimeoutIsRejected(text: String) {
        #expect(GRPCTimeout.parse(text) == nil)
    }

    @Test func timeoutFormatRoundsUpAndFits() {
        #expect(GRPCTimeout.format(.milliseconds(1)) == "1000000n")
        #expect(GRPCTimeout.format(.seconds(10)) == "10000000u")
        #expect(GRPCTimeout.format(.seconds(3 * 86400)) == "259200S")
        #expect(GRPCTimeout.parse(GRPCTimeout.format(.milliseconds(1500)))! >= .milliseconds(1500))
    }

    /// gRPC PROTOCOL-HTTP2.md, Status-Message: `a%b ☺\n` → `a%25b %E2%98%BA%0A`, as grpc-go and C-core do.
    @Test func statusMessagePercentEncoding() {
        #expect(GRPCStatusMessage.encode("a%b ☺\n") == "a%25b %E2%98%BA%0A")
        #expect(GRPCStatusMessage.decode("a%25b %E2%98%BA%0A") == "a%b ☺\n")
        let special = "\t\ntest with whitespace\r\nand Unicode BMP ☺ and non-BMP 😈\t\n"
        #expect(GRPCStatusMessage.decode(GRPCStatusMessage.encode(special)) == special)
        // Decoding never fails: bad escapes stay as they are.
        #expect(GRPCStatusMessage.decode("100%") == "100%")
        #expect(GRPCStatusMessage.decode("%zz%4") == "%zz%4")
    }

    @Test func binaryMetadataAcceptsPaddedUnpaddedAndCommaJoinedValues() throws {
        var metadata = Metadata()
        try MetadataCoding.add(name: "x-bin", value: "AAEC", to: &metadata)
        try MetadataCoding.add(name: "x-bin", value: "AAE=,AA", to: &metadata)
        #expect(metadata[binaryValues: "x-bin"] == [[0, 1, 2], [0, 1], [0]])
        #expect(throws: MetadataCoding.InvalidBinaryValue.self) {
            try MetadataCoding.add(name: "x-bin", value: "!!!", to: &metadata)
        }
        // Non-ASCII text values (PROTOCOL-HTTP2.md, Custom-Metadata) arrive empty, not as an error nor as
        // nothing: an authorization header with a stray byte is malformed, not missing.
        try MetadataCoding.add(name: "x-text", value: "caf\u{E9}", to: &metadata)
        #expect(metadata[stringValues: "x-text"] == [""])
        #expect(MetadataCoding.headers(for: metadata).first { $0.0 == "x-bin" }?.1 == "AAEC")
    }

    @Test func textMetadataIsTrimmedAndPrintableASCIIOnly() {
        #expect(MetadataCoding.printableTrimmed("  a b  ") == "a b")
        #expect(MetadataCoding.printableTrimmed("Bearer x.y.z") == "Bearer x.y.z")
        #expect(MetadataCoding.printableTrimmed("   ") == "")
        #expect(MetadataCoding.printableTrimmed("") == "")
        #expect(MetadataCoding.printableTrimmed("a\tb") == nil)
        #expect(MetadataCoding.printableTrimmed("a\u{7F}") == nil)
        #expect(MetadataCoding.printableTrimmed("caf\u{E9}") == nil)
    }

    @Test func repeatedHeaderStringsAreReusedAndNeverCredentials() {
        var recent = RecentHeaderStrings()
        func make(_ bytes: [UInt8]) -> String { bytes.withUnsafeBytes { recent.string($0) } }
        func address(_ text: String) -> UnsafeRawPointer? { var text = text; return text.withUTF8 { UnsafeRawPointer($0.baseAddress) } }
        let path = Array("/grpc.testing.TestService/UnaryCall".utf8)
        let first = make(path)
        #expect(first == "/grpc.testing.TestService/UnaryCall")
        #expect(address(make(path)) == address(first), "the same bytes reuse the string made before")
        for i in 0..<20 { #expect(make(Array("/a.very.long.service.Name/M\(i)".utf8)) == "/a.very.long.service.Name/M\(i)") }
        #expect(make(path) == first)
        let invalid: [UInt8] = Array(repeating: 0x61, count: 16) + [0xFF]
        #expect(make(invalid) == String(decoding: invalid, as: UTF8.self))
        #expect(make(invalid) == String(decoding: invalid, as: UTF8.self))
        #expect(!RecentHeaderStrings.mayKeep("authorization") && !RecentHeaderStrings.mayKeep("cookie"))
        #expect(RecentHeaderStrings.mayKeep(":path") && RecentHeaderStrings.mayKeep("content-type"))
    }

    /// The word-at-a-time check finds a byte outside 0x20–0x7E wherever it is, and passes the two edges.
    @Test(arguments: [0x00, 0x09, 0x1F, 0x7F, 0x80, 0xC3, 0xFF, 0x20, 0x7E] as [UInt8])
    func printableCheckFindsEveryByteAtEveryOffset(byte: UInt8) {
        let printable = byte >= 0x20 && byte <= 0x7E
        for filler in [0x20, 0x61, 0x7E] as [UInt8] {
            for length in [1, 7, 8, 9, 16, 31] {
                for position in 0..<length {
                    var bytes = [UInt8](repeating: filler, count: length)
                    bytes[position] = byte
                    let found = bytes.withUnsafeBufferPointer { MetadataCoding.isPrintableASCII($0) }
                    #expect(found == printable, "byte \(byte) at \(position) of \(length) among \(filler)")
                }
            }
        }
    }
}

@Suite("message deframing")
struct MessageDeframerTests {
    func frame(_ payload: [UInt8], flag: UInt8 = 0) -> [UInt8] {
        [flag] + withUnsafeBytes(of: UInt32(payload.count).bigEndian, Array.init) + payload
    }

    /// A stream whose DATA chunks never end on a message boundary never empties the buffer; the bytes read
    /// used to stay in it, so it grew by the whole stream (a 200 MiB upload: 200 MiB).
    @Test func aBufferThatNeverEmptiesDoesNotGrowWithTheStream() throws {
        var deframer = MessageDeframer(maxMessageSize: 1 << 20, encoding: nil)
        let message = [UInt8](repeating: 9, count: 65_536)
        let wire = (0..<200).flatMap { _ in frame(message) }
        var received = 0
        for start in stride(from: 0, to: wire.count, by: 50_000) {
            wire[start..<min(start + 50_000, wire.count)].withUnsafeBytes { deframer.append($0) }
            while let m = try deframer.next() {
                #expect(m.bytes.count == message.count)
                received += 1
            }
        }
        #expect(received == 200)
        #expect(deframer.retainedBytes < 1 << 20, "held \(deframer.retainedBytes) bytes")
    }

    func feed(_ deframer: inout MessageDeframer, _ bytes: [UInt8]) {
        bytes.withUnsafeBytes { deframer.append($0) }
    }

    @Test func messageSplitAcrossManyChunks() throws {
        var d = MessageDeframer(maxMessageSize: 1 << 20, encoding: nil)
        let payload = (0..<1000).map { UInt8(truncatingIfNeeded: $0) }
        for byte in frame(payload) {
            #expect(try d.next() == nil)
            feed(&d, [byte])
        }
        let message = try #require(try d.next())
        #expect(message.bytes == payload && message.wireSize == 1005)
        try d.finish()
    }

    /// A message whose size the receive budget holds arrives into one array of its declared length, in
    /// pieces of any size; what follows it in the same piece is the next message.
    @Test(arguments: [1, 5, 1000, 16_384, 1 << 20])
    func aReservedMessageArrivesWholeInPiecesOfAnySize(piece: Int) throws {
        var d = MessageDeframer(maxMessageSize: 1 << 20, encoding: nil)
        let payload = (0..<300_000).map { UInt8(truncatingIfNeeded: $0 &* 31) }
        let wire = frame(payload) + frame([1, 2, 3])
        feed(&d, Array(wire[..<100]))
        #expect(try d.next() == nil)
        d.reserveMessage()
        #expect(d.pendingBytes == 100 && d.pendingMessageLength == payload.count)
        var offset = 100
        var messages: [[UInt8]] = []
        while offset < wire.count {
            let end = min(offset + piece, wire.count)
            wire[offset..<end].withUnsafeBytes { d.append($0) }
            offset = end
            while let m = try d.next() { messages.append(m.bytes) }
            #expect(d.pendingBytes == offset - messages.reduce(0) { $0 + 5 + $1.count })
        }
        #expect(messages.count == 2 && messages.first == payload && messages.last == [1, 2, 3])
        try d.finish()
    }

    @Test func aReservedMessageFailsWhenCompleteAndStillCounts() throws {
        var d = MessageDeframer(maxMessageSize: 1 << 20, encoding: nil)
        let wire = frame([UInt8](repeating: 1, count: 100_000), flag: 1)
        feed(&d, Array(wire[..<10]))
        d.reserveMessage()
        #expect(throws: MessageDeframer.Failure.truncated) { try d.finish() }
        feed(&d, Array(wire[10...]))
        #expect(throws: MessageDeframer.Failure.compressedWithoutEncoding) { try d.next() }
        #expect(d.pendingBytes == wire.count, "its bytes are given back when the stream ends")
    }

    /// Whole messages at the start of a chunk are taken straight from it; the rest is buffered, and a whole
    /// message that fails still counts as received, so the stream's end gives its bytes back.
    @Test func wholeMessagesComeStraightFromTheChunkAndFailuresStillCount() throws {
        var inbound = InboundMessages(maxMessageSize: 1 << 20, encoding: nil)
        let third = frame([7, 8, 9, 10])
        let chunk = frame([1]) + frame([2, 3]) + third[..<6]
        var received: [[UInt8]] = []
        try chunk.withUnsafeBytes { try inbound.receive($0) { message, cost, _ in received.append(message); #expect(cost == 5 + message.count) } }
        #expect(received == [[1], [2, 3]] && inbound.deframer.pendingBytes == 6)
        try third[6...].withUnsafeBytes { try inbound.receive($0) { message, _, _ in received.append(message) } }
        #expect(received.last == [7, 8, 9, 10] && inbound.deframer.pendingBytes == 0)

        let bad = frame([1, 2, 3], flag: 1)
        #expect(throws: MessageDeframer.Failure.compressedWithoutEncoding) {
            try bad.withUnsafeBytes { try inbound.receive($0) { _, _, _ in Issue.record("delivered") } }
        }
        #expect(inbound.abandon().window == bad.count)
    }

    /// A 3 MiB message in 16 KiB DATA chunks took a buffer of 4 MiB, doubling as it filled (each time into
    /// fresh pages), and was then copied out of it. Once the budget holds its size, it takes its size.
    @Test func aMessageLargerThanTheWindowTakesItsOwnSize() throws {
        let budget = ReceiveBudget(limit: 32 << 20) {}
        var inbound = InboundMessages(maxMessageSize: 4 << 20, encoding: nil, reserveAbove: 65_536)
        let payload = [UInt8](repeating: 5, count: 3 << 20)
        let wire = frame(payload)
        var received: [UInt8]?
        var peak = 0
        for start in stride(from: 0, to: wire.count, by: 16_384) {
            try wire[start..<min(start + 16_384, wire.count)].withUnsafeBytes { bytes in
                try inbound.receive(bytes) { message, _, _ in received = message }
            }
            _ = inbound.settle(budget: budget) { true }
            peak = max(peak, inbound.deframer.retainedBytes)
        }
        #expect(received == payload)
        #expect(peak < payload.count + 65_536, "held \(peak) bytes")
    }

    @Test func manyMessagesInOneChunkAndZeroLength() throws {
        var d = MessageDeframer(maxMessageSize: 1 << 20, encoding: nil)
        feed(&d, frame([]) + frame([1]) + frame([2, 3]) + frame([]))
        var out: [[UInt8]] = []
        while let m = try d.next() { out.append(m.bytes) }
        #expect(out == [[], [1], [2, 3], []])
    }

    @Test func oversizeIsRejectedFromThePrefix() {
        var d = MessageDeframer(maxMessageSize: 100, encoding: nil)
        feed(&d, [0, 0, 0, 0, 101])  // only the prefix: no need to buffer the message to refuse it
        #expect(throws: MessageDeframer.Failure.tooLarge(length: 101, limit: 100)) { try d.next() }
    }

    @Test func compressedFlagWithoutEncodingIsRejected() {
        var d = MessageDeframer(maxMessageSize: 100, encoding: nil)
        feed(&d, frame([1, 2, 3], flag: 1))
        #expect(throws: MessageDeframer.Failure.compressedWithoutEncoding) { try d.next() }
    }

    /// Only 0 and 1 are defined; refused from the prefix, before the message is buffered.
    @Test func aFlagOtherThanZeroOrOneIsRejected() {
        var d = MessageDeframer(maxMessageSize: 100, encoding: .gzip)
        feed(&d, [2, 0, 0, 0, 50])
        #expect(throws: MessageDeframer.Failure.invalidFlag(2)) { try d.next() }
    }

    @Test func endInsideAMessageIsTruncation() throws {
        var d = MessageDeframer(maxMessageSize: 100, encoding: nil)
        feed(&d, Array(frame([1, 2, 3]).dropLast()))
        #expect(try d.next() == nil)
        #expect(throws: MessageDeframer.Failure.truncated) { try d.finish() }
    }

    @Test(arguments: [MessageEncoding.gzip, .deflate])
    func compressedMessagesRoundTrip(encoding: MessageEncoding) throws {
        let payload = [UInt8](repeating: 7, count: 100_000)
        let framed = MessageFramer.frame(payload, encoding: encoding)
        #expect(framed.wireSize < 2000)
        var d = MessageDeframer(maxMessageSize: 1 << 20, encoding: encoding)
        framed.wireBytes.withUnsafeBytes { d.append($0) }
        #expect(try d.next()?.bytes == payload)
    }

    /// A message that compression would not shrink goes out as it is, with the compressed flag clear: before,
    /// the flag was set on whatever deflate produced, larger or not.
    @Test(arguments: [MessageEncoding.gzip, .deflate])
    func incompressibleMessagesGoOutUncompressed(encoding: MessageEncoding) throws {
        var generator = SystemRandomNumberGenerator()
        for payload in [[], [42], (0..<10_000).map { _ in UInt8.random(in: 0...255, using: &generator) }] {
            let framed = MessageFramer.frame(payload, encoding: encoding)
            #expect(framed.wireBytes == frame(payload, flag: 0))
            var d = MessageDeframer(maxMessageSize: 1 << 20, encoding: encoding)
            framed.wireBytes.withUnsafeBytes { d.append($0) }
            #expect(try d.next()?.bytes == payload)
        }
    }

    /// A small compressed message that inflates beyond the limit stops at the limit.
    @Test(arguments: [
        ("gzip", MessageEncoding.gzip), ("identity, deflate, gzip", .gzip), ("deflate,gzip", .gzip), (" deflate\t", .deflate),
        ("identity,deflate", .deflate), ("identity", nil), ("", nil), (",,", nil), ("gzip2, xdeflate", nil), ("GZIP", nil),
        ("snappy, deflate , identity", .deflate),
    ] as [(String, MessageEncoding?)])
    func responseEncodingIsPickedFromTheAcceptedList(header: String, expected: MessageEncoding?) {
        #expect(MessageEncoding.preferred(fromAcceptHeader: header) == expected)
    }

    @Test func decompressionStopsAtTheLimit() throws {
        let bomb = try #require(MessageEncoding.gzip.compress([UInt8](repeating: 0, count: 10 << 20)))
        var d = MessageDeframer(maxMessageSize: 4 << 20, encoding: .gzip)
        feed(&d, frame(bomb, flag: 1))
        #expect(throws: MessageDeframer.Failure.decompressedTooLarge(limit: 4 << 20)) { try d.next() }
    }

    @Test func corruptCompressedMessageFails() {
        var d = MessageDeframer(maxMessageSize: 1 << 20, encoding: .gzip)
        feed(&d, frame([1, 2, 3, 4, 5], flag: 1))
        #expect(throws: MessageDeframer.Failure.decompressionFailed) { try d.next() }
    }
}

@Suite("request validation (PROTOCOL-HTTP2 Requests, grpc-go operateHeaders)")
struct ServerRequestHeadTests {
    static let valid: [(name: String, value: String)] = [
        (":method", "POST"), (":scheme", "http"), (":path", "/pkg.Service/Method"), (":authority", "localhost"),
        ("content-type", "application/grpc"), ("te", "trailers"),
    ]

    func validate(_ change: (inout [(name: String, value: String)]) -> Void) -> Result<ServerRequestHead, ServerRequestHead.Rejection> {
        var headers = Self.valid
        change(&headers)
        return ServerRequestHead.validate(headers)
    }

    func rejection(_ change: (inout [(name: String, value: String)]) -> Void) -> ServerRequestHead.Rejection? {
        if case .failure(let r) = validate(change) { return r }
        return nil
    }

    @Test func validRequestIsAccepted() throws {
        let head = try validate { $0 += [("grpc-timeout", "5S"), ("x-id", "7"), ("x-b-bin", "AQ"), ("grpc-encoding", "gzip")] }.get()
        #expect(head.service == "pkg.Service" && head.methodName == "Method")
        #expect(head.timeout == .seconds(5) && head.encoding == .gzip)
        #expect(head.metadata.first("x-id") == "7" && head.metadata[binaryValues: "x-b-bin"] == [[1]])
        #expect(head.metadata.first("te") == nil)
    }

    @Test func missingTEIsAccepted() throws {  // as grpc-go internal/transport/http2_server.go
        _ = try validate { $0.removeAll { $0.name == "te" } }.get()
    }

    @Test(arguments: ["application/grpc", "application/grpc+proto", "application/grpc;charset=utf-8"])
    func grpcContentTypes(value: String) throws {
        _ = try validate { $0[4].value = value }.get()
    }

    @Test(arguments: ["application/json", "application/grpc-web", "application/grpcx", "text/plain"])
    func otherContentTypesGet415(value: String) {
        #expect(rejection { $0[4].value = value }?.httpStatus == 415)
        #expect(rejection { $0[4].value = value }?.status.code == .invalidArgument)
    }

    @Test func getIs405() {
        #expect(rejection { $0[0].value = "GET" } == .init(
            httpStatus: 405,
            status: Status(code: .internal, message: "Received a HEADERS frame with :method \"GET\" which should be POST")
        ))
    }

    @Test(arguments: ["/", "//", "/pkg.Service", "/pkg.Service/", "pkg.Service/Method", "//Method"])
    func malformedPathIsUnimplemented(path: String) {
        let r = rejection { $0[2].value = path }
        #expect(r?.httpStatus == 200 && r?.status.code == .unimplemented)
    }

    @Test func malformedTimeoutAndBinaryMetadataAre400() {
        #expect(rejection { $0.append(("grpc-timeout", "soon")) }?.httpStatus == 400)
        #expect(rejection { $0.append(("x-bad-bin", "@@@")) }?.httpStatus == 400)
    }

    @Test func twoAuthoritiesAre400() {
        #expect(rejection { $0.append((":authority", "other")) }?.httpStatus == 400)
    }

    @Test func unknownEncodingListsWhatIsAccepted() {
        let r = rejection { $0.append(("grpc-encoding", "snappy")) }
        #expect(r?.status.code == .unimplemented && r?.listAcceptedEncodings == true)
    }
}

@Suite("stream buffers and flow control")
struct StreamBufferTests {
    /// A pushed message was accepted even if the stream ends before the writer asks for room: only the next
    /// push fails.
    @Test func aStreamEndingAfterAPushFailsOnlyTheNextPush() async throws {
        let gate = OutboundGate(highWater: 1 << 20, lowWater: 1 << 18)
        #expect(try gate.push(OutboundMessage([], compressedFlag: 0)))
        gate.close(RPCError(code: .cancelled, message: "the call has ended"))
        try await gate.waitForRoom()
        #expect(gate.takePending().isEmpty, "what was pending goes with the stream")
        #expect(throws: RPCError.self) { try gate.push(OutboundMessage([], compressedFlag: 0)) }
    }
    /// A sender may run ahead of its reader by the window, not more. Messages of 64 KiB + 9 bytes in 16 KiB
    /// DATA chunks end a few bytes into a chunk, so a message's own cost is tiny; the bytes of the next
    /// message, given back as they came, used to let the sender go on without limit (an upload's memory grew
    /// by the file). Now they are given back only while the reader has taken everything queued.
    @Test func bytesOfAMessageStillArrivingWaitForTheReaderToCatchUp() async throws {
        let consumeRequested = Flag()
        let budget = ReceiveBudget(limit: 32 << 20) {}
        let inbox = StreamInbox<[UInt8]>(batch: 1 << 18, budget: budget) { consumeRequested.set() }
        var inbound = InboundMessages(maxMessageSize: 4 << 20, encoding: nil)
        let message = [UInt8](repeating: 7, count: 65_536 + 4)  // + the 5-byte prefix: 65,545 on the wire
        var wire: [UInt8] = []
        for _ in 0..<40 {
            let framed = MessageFramer.frame(message, encoding: nil)
            wire += framed.wireBytes
        }
        var givenBack = 0
        var offset = 0
        while offset < wire.count {
            let chunk = wire[offset..<min(offset + 16_384, wire.count)]
            offset += chunk.count
            try chunk.withUnsafeBytes { bytes in
                try inbound.receive(bytes) { inbox.push(.init(element: $0, cost: $1, reserved: $2)) }
            }
            givenBack += inbound.settle(budget: budget) { inbox.readerCaughtUp() }
        }
        // Nothing was read: only the first message, which came while nothing was queued, was given back.
        #expect(givenBack < 65_545)
        #expect(budget.reserved == 65_545, "the first message holds a reservation of its size")
        for _ in 0..<40 { #expect(try await inbox.next() == message) }
        // Caught up: every received byte has been given back or is now waiting to be.
        #expect(givenBack + inbox.takePendingCost() == wire.count)
        #expect(consumeRequested.isSet)
        #expect(budget.reserved == 0, "taking the message released its reservation")
    }

    /// A queue that never runs dry (the sender always a message ahead of the reader, as when the handler runs
    /// on the connection's event loop) used to keep every message taken from it until it did: a 200 MiB upload
    /// held 200 MiB. Taken messages are let go of as the reader goes.
    @Test func anInboxThatNeverRunsDryLetsGoOfWhatWasTaken() async throws {
        final class Counter: Sendable { let value = Mutex(0) }
        final class Tracked: Sendable {
            let freed: Counter
            init(_ freed: Counter) { self.freed = freed }
            deinit { freed.value.withLock { $0 += 1 } }
        }
        let freed = Counter()
        let inbox = StreamInbox<Tracked>(batch: 1 << 18) {}
        inbox.push(.init(element: Tracked(freed), cost: 0))
        for _ in 0..<100 {
            inbox.push(.init(element: Tracked(freed), cost: 0))
            _ = try await inbox.next()
        }
        #expect(freed.value.withLock { $0 } >= 80)
    }

    @Test func anOutboxThatNeverDrainsLetsGoOfWhatWasSent() {
        var outbox = OutboundQueue()
        outbox.append(OutboundMessage([UInt8](repeating: 1, count: 100), compressedFlag: nil))
        var space = [UInt8](repeating: 0, count: 100)
        for _ in 0..<100 {
            outbox.append(OutboundMessage([UInt8](repeating: 1, count: 100), compressedFlag: nil))
            #expect(space.withUnsafeMutableBytes { outbox.drain(into: $0) } == 100)
        }
        #expect(outbox.retainedCount < 40)
    }

    /// A stream's bytes leave the connection's send budget when the stream goes, and nothing written after
    /// that can add to it (the gate is closed first).
    @Test func aDiscardedStreamLeavesTheSendBudgetForGood() throws {
        let budget = SendBudget(limit: 10)
        let gate = OutboundGate(highWater: 1 << 20, lowWater: 1 << 18, budget: budget)
        _ = try gate.push(OutboundMessage([UInt8](repeating: 1, count: 20), compressedFlag: 0))
        #expect(budget.bytes == 25 && budget.isOver)
        gate.drained(5)
        gate.discardQueued(RPCError(code: .cancelled, message: "gone"))
        #expect(budget.bytes == 0 && !budget.isOver)
        #expect(throws: RPCError.self) { try gate.push(OutboundMessage([1], compressedFlag: 0)) }
        #expect(budget.bytes == 0)
    }

    /// Messages leave as gRPC frames them, the prefix made as it is sent, whatever sizes nghttp2 asks for:
    /// a prefix split across DATA frames included.
    @Test(arguments: [1, 2, 3, 4, 6, 7, 300, 16_384])
    func anOutboxSendsTheFramedBytesInPiecesOfAnySize(piece: Int) {
        let messages = [
            OutboundMessage([], compressedFlag: 0), OutboundMessage([9], compressedFlag: 1),
            OutboundMessage((0..<300).map { UInt8(truncatingIfNeeded: $0) }, compressedFlag: 0),
            OutboundMessage([1, 2, 3], compressedFlag: nil),
            OutboundMessage([UInt8](repeating: 5, count: 70_000), compressedFlag: 0),
        ]
        let framed: [[UInt8]] = [
            ConnectionHarness.frame([]), ConnectionHarness.frame([9], flag: 1),
            ConnectionHarness.frame((0..<300).map { UInt8(truncatingIfNeeded: $0) }), [1, 2, 3],
            ConnectionHarness.frame([UInt8](repeating: 5, count: 70_000)),
        ]
        let expected = framed.flatMap { $0 }
        #expect(messages.flatMap(\.wireBytes) == expected)
        var outbox = OutboundQueue()
        for message in messages { outbox.append(message) }
        var sent: [UInt8] = []
        var space = [UInt8](repeating: 0, count: piece)
        while !outbox.isEmpty {
            let n = space.withUnsafeMutableBytes { outbox.drain(into: $0) }
            #expect(n > 0 && (n == piece || outbox.isEmpty))
            sent += space[..<n]
        }
        #expect(sent == expected)
    }

    /// Bytes given back before the reader took them are held against the connection's budget: a message
    /// that does not fit waits (its bytes stay in the window) until a reader releases enough, in arrival
    /// order, and newcomers do not overtake it. With nothing reserved, any message fits.
    @Test func theReceiveBudgetServesWaitingStreamsInOrder() {
        let woken = Flag()
        let budget = ReceiveBudget(limit: 100) { woken.set() }
        #expect(budget.reserve(60))
        #expect(!budget.reserve(60), "over the limit: waits")
        #expect(!budget.reserve(10), "fits, but someone waits in line")
        #expect(!woken.isSet)
        budget.release(60)
        #expect(woken.isSet, "a release while someone waits wakes the loop")
        budget.serving()
        #expect(budget.reserve(60, ahead: true), "the first in line is served")
        budget.served(stillWaiting: false)
        #expect(budget.reserve(10))
        budget.release(70)
        #expect(budget.reserve(500), "with nothing reserved, one message of any size fits")
        #expect(!budget.reserveIfFree(1))
        budget.release(500)
        #expect(budget.reserved == 0)
    }

    /// When the peer ends the stream, queued messages' window goes back at once and they are held against
    /// the budget instead; a stream that goes away releases what its unread messages held.
    @Test func queuedMessagesAreHeldAgainstTheBudgetAfterTheStreamEnds() async throws {
        let budget = ReceiveBudget(limit: 1 << 20) {}
        let inbox = StreamInbox<[UInt8]>(batch: 1 << 18, budget: budget) {}
        inbox.push(.init(element: [1], cost: 1_000))
        inbox.push(.init(element: [2], cost: 2_000))
        #expect(inbox.releaseCostsAtEnd() == 3_000)
        #expect(budget.reserved == 3_000)
        #expect(try await inbox.next() == [1])
        #expect(budget.reserved == 2_000)
        #expect(inbox.takePendingCost() == 0, "its window was given back already")
        let left = inbox.releaseAll()
        #expect(left.window == 0 && left.reserved == 2_000)
        budget.release(left.reserved)  // as the connection does
        #expect(try await inbox.next() == [2])
        #expect(budget.reserved == 0, "released once, by the stream's end, not again by the reader")
    }
}
