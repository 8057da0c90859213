/// What the transport's decoders of untrusted bytes must survive: any bytes are refused or accepted, never a
/// crash, a hang or unbounded memory. The first byte picks the decoder:
/// - the gRPC message deframer (length prefixes, compressed flags, gzip and deflate bodies), fed in chunks;
/// - request header validation (`:path`, `content-type`, `te`, `grpc-timeout`, `grpc-encoding`, metadata),
///   from `name:value` lines;
/// - a server's nghttp2 session fed the client preface and then the bytes as frames, with the header
///   validation and the deframer behind it as the connection handler uses them.
/// The fuzz target (`scripts/fuzz transport`) and the corpus replay (`Tests/RPCHTTP2Tests/FuzzCorpus`) run it.
public enum TransportFuzzing {
    public static func check(_ data: UnsafeRawBufferPointer) {
        guard data.count >= 2 else { return }
        let payload = UnsafeRawBufferPointer(rebasing: data.dropFirst(2))
        switch data[0] % 3 {
        case 0: deframe(payload, encoding: [nil, .gzip, .deflate][Int(data[1]) % 3], chunk: Int(data[1] >> 2) + 1)
        case 1: _ = ServerRequestHead.validate(headerFields(payload))
        default: serve(payload)
        }
    }

    private static func deframe(_ bytes: UnsafeRawBufferPointer, encoding: MessageEncoding?, chunk: Int) {
        var deframer = MessageDeframer(maxMessageSize: 1 << 16, encoding: encoding)
        var offset = 0
        do {
            while offset < bytes.count {
                let end = min(bytes.count, offset + chunk)
                deframer.append(UnsafeRawBufferPointer(rebasing: bytes[offset..<end]))
                offset = end
                while try deframer.next() != nil {}
            }
            try deframer.finish()
        } catch {}
    }

    /// `name:value` lines; a name may start with `:` (pseudo-headers), so it ends at the first `:` after that.
    private static func headerFields(_ bytes: UnsafeRawBufferPointer) -> [(name: String, value: String)] {
        bytes.split(separator: 0x0A, omittingEmptySubsequences: true).map { line in
            let colon = line.dropFirst().firstIndex(of: 0x3A) ?? line.endIndex
            let value = colon < line.endIndex ? line[line.index(after: colon)...] : line[line.endIndex...]
            return (String(decoding: line[..<colon], as: UTF8.self), String(decoding: value, as: UTF8.self))
        }
    }

    private static func serve(_ bytes: UnsafeRawBufferPointer) {
        let delegate = FuzzServerDelegate()
        guard let session = try? NGHTTP2Session(role: .server, settings: .init(), delegate: delegate) else { return }
        delegate.session = session
        let preface = Array("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".utf8) + [0, 0, 0, 4, 0, 0, 0, 0, 0]
        do {
            try preface.withUnsafeBytes { try session.receive($0) }
            try session.receive(bytes)
            try session.send { _ in }
        } catch {}
    }
}

/// The parts of the server connection handler that untrusted frames reach, without sockets or tasks.
private final class FuzzServerDelegate: NGHTTP2SessionDelegate {
    weak var session: NGHTTP2Session?
    var headers: [Int32: [(name: String, value: String)]] = [:]
    var messages: [Int32: InboundMessages] = [:]

    func beginHeaders(stream: Int32) {
        headers[stream] = headers[stream] ?? []
    }

    func header(stream: Int32, name: UnsafeRawBufferPointer, value: UnsafeRawBufferPointer) -> HeaderVerdict {
        guard headers[stream, default: []].count < 100 else { return .refuseStream }
        headers[stream, default: []].append((String(decoding: name, as: UTF8.self), String(decoding: value, as: UTF8.self)))
        return .accept
    }

    func headersComplete(stream: Int32, endStream: Bool) {
        guard messages[stream] == nil else { return }
        if case .success(let head) = ServerRequestHead.validate(headers[stream] ?? []) {
            messages[stream] = InboundMessages(maxMessageSize: 1 << 16, encoding: head.encoding)
        } else {
            session?.resetStream(stream, code: .refusedStream)
        }
    }

    func data(stream: Int32, bytes: UnsafeRawBufferPointer) {
        session?.consume(stream: stream, bytes: bytes.count)
        do {
            try messages[stream]?.receive(bytes) { _, _, _ in }
        } catch {
            messages[stream] = nil
            session?.resetStream(stream, code: .cancel)
        }
    }

    func dataEnded(stream: Int32) {
        try? messages[stream]?.deframer.finish()
    }

    func streamClosed(stream: Int32, errorCode: UInt32) {
        headers[stream] = nil
        messages[stream] = nil
    }

    func endStreamHeadersSent(stream: Int32) {}

    func readData(stream: Int32, into buffer: UnsafeMutableRawBufferPointer) -> NGHTTP2Session.DataReadResult {
        .end(0, trailers: [])
    }

    func goAwayReceived(lastStreamID: Int32, errorCode: UInt32) {}
    func pingAckReceived(opaqueData: UInt64) {}
    func pingReceived() {}
}
