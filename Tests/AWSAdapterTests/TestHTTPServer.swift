import NIOCore
import NIOHTTP1
import NIOPosix
import OpenSSLCrypto
import ProtoRuntime
import Synchronization

/// A small HTTP/1.1 server on a free loopback port for the client tests. It counts connections and bytes
/// and answers:
/// - `GET /bytes/N`: N bytes of a fixed pattern (`pattern(at:)`), written with backpressure;
/// - `PUT|POST /hash`: the SHA-256 (hex) and length of the body it received, and whether it came chunked;
/// - `GET /status/N`: status N with a short body; `GET /silent`: never answers;
/// - `GET /creds/T`: container credentials expiring at Unix time T (`AccessKeyId` `AKID<n>` for the n-th
///   request), only with `Authorization: token-1`.
final class TestHTTPServer: Sendable {
    final class Counters: Sendable {
        let connections = Atomic<Int>(0)
        let written = Atomic<Int>(0)
        let received = Atomic<Int>(0)
        /// Responses the client stopped reading before their end.
        let abandoned = Atomic<Int>(0)
        let credentialRequests = Atomic<Int>(0)
    }

    let counters = Counters()
    private let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
    private let channel: Channel

    var port: Int { channel.localAddress!.port! }
    var url: String { "http://127.0.0.1:\(port)" }

    init() async throws {
        let counters = counters
        channel = try await ServerBootstrap(group: group)
            .serverChannelOption(.backlog, value: 64)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelInitializer { channel in
                counters.connections.add(1, ordering: .relaxed)
                return channel.pipeline.configureHTTPServerPipeline().flatMap {
                    channel.pipeline.addHandler(Handler(counters: counters))
                }
            }
            .bind(host: "127.0.0.1", port: 0).get()
    }

    func shutdown() async throws {
        try await channel.close()
        try await group.shutdownGracefully()
    }

    /// The pattern repeats every `period` bytes: a prime, so no chunk size lines up with it and a chunk out of
    /// place changes the digest.
    static let period = 1_048_573
    static let block: [UInt8] = (0..<period).map { UInt8(truncatingIfNeeded: $0 &* 31 &+ $0 >> 13) }

    static func patternBytes(_ range: Range<Int>) -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(range.count)
        var offset = range.lowerBound
        while offset < range.upperBound {
            let start = offset % period
            let n = min(period - start, range.upperBound - offset)
            out += block[start..<start + n]
            offset += n
        }
        return out
    }

    /// SHA-256 of the first `count` bytes of the pattern.
    static func patternDigest(_ count: Int) -> [UInt8] {
        let hasher = SHA256Hasher()
        var offset = 0
        while offset < count {
            let end = min(count, offset + (4 << 20))
            hasher.update(patternBytes(offset..<end))
            offset = end
        }
        return hasher.finalize()
    }

    private final class Handler: ChannelInboundHandler, @unchecked Sendable {
        typealias InboundIn = HTTPServerRequestPart
        typealias OutboundOut = HTTPServerResponsePart

        let counters: Counters
        var head: HTTPRequestHead?
        var hasher = SHA256Hasher()
        var length = 0

        init(counters: Counters) { self.counters = counters }

        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            switch unwrapInboundIn(data) {
            case .head(let head):
                self.head = head
                hasher = SHA256Hasher()
                length = 0
            case .body(let buffer):
                counters.received.add(buffer.readableBytes, ordering: .relaxed)
                length += buffer.readableBytes
                buffer.withUnsafeReadableBytes { hasher.update($0) }
            case .end:
                guard let head else { return }
                respond(to: head, context: context)
            }
        }

        private func respond(to head: HTTPRequestHead, context: ChannelHandlerContext) {
            let parts = head.uri.split(separator: "/")
            switch (head.method, parts.first) {
            case (.GET, "bytes"?):
                let total = Int(parts[1]) ?? 0
                var headers = HTTPHeaders([("content-length", "\(total)")])
                headers.add(name: "content-type", value: "application/octet-stream")
                context.write(wrapOutboundOut(.head(HTTPResponseHead(version: .http1_1, status: .ok, headers: headers))), promise: nil)
                writeBytes(from: 0, total: total, context: context)
            case (.HEAD, "bytes"?):
                let headers = HTTPHeaders([("content-length", "\(Int(parts[1]) ?? 0)")])
                context.write(wrapOutboundOut(.head(HTTPResponseHead(version: .http1_1, status: .ok, headers: headers))), promise: nil)
                context.writeAndFlush(wrapOutboundOut(.end(nil)), promise: nil)
            case (.PUT, "hash"?), (.POST, "hash"?):
                let chunked = head.headers["transfer-encoding"].contains("chunked")
                let digest = hasher.finalize().map { String($0, radix: 16).count == 1 ? "0" + String($0, radix: 16) : String($0, radix: 16) }.joined()
                reply(.ok, "\(digest) \(length) \(chunked ? "chunked" : "sized")", context: context)
            case (.GET, "status"?):
                reply(HTTPResponseStatus(statusCode: Int(parts[1]) ?? 500), "status \(parts[1])", context: context)
            case (.GET, "silent"?):
                break
            case (.GET, "creds"?):
                guard head.headers["authorization"].first == "token-1" else {
                    reply(.unauthorized, "no", context: context)
                    return
                }
                let n = counters.credentialRequests.add(1, ordering: .relaxed).newValue
                let expires = (try? ProtoJSONTime.formatTimestamp(seconds: Int64(parts[1]) ?? 0, nanos: 0)) ?? ""
                reply(.ok, #"{"AccessKeyId":"AKID\#(n)","SecretAccessKey":"secret-\#(n)","Token":"token-\#(n)","Expiration":"\#(expires)"}"#, context: context)
            default:
                reply(.notFound, "no such path", context: context)
            }
        }

        private func reply(_ status: HTTPResponseStatus, _ text: String, context: ChannelHandlerContext) {
            var buffer = context.channel.allocator.buffer(capacity: text.utf8.count)
            buffer.writeString(text)
            let headers = HTTPHeaders([("content-length", "\(buffer.readableBytes)"), ("content-type", "text/plain")])
            context.write(wrapOutboundOut(.head(HTTPResponseHead(version: .http1_1, status: status, headers: headers))), promise: nil)
            context.write(wrapOutboundOut(.body(.byteBuffer(buffer))), promise: nil)
            context.writeAndFlush(wrapOutboundOut(.end(nil)), promise: nil)
        }

        /// Writes the pattern 64 KiB at a time, the next piece only once the previous one is written: the server
        /// gets ahead of the client by no more than the socket buffers.
        private func writeBytes(from offset: Int, total: Int, context: ChannelHandlerContext) {
            guard offset < total else {
                context.writeAndFlush(wrapOutboundOut(.end(nil)), promise: nil)
                return
            }
            let end = min(total, offset + 64 * 1024)
            var buffer = context.channel.allocator.buffer(capacity: end - offset)
            buffer.writeBytes(TestHTTPServer.patternBytes(offset..<end))
            let counters = counters
            context.writeAndFlush(wrapOutboundOut(.body(.byteBuffer(buffer)))).whenComplete { result in
                switch result {
                case .success:
                    counters.written.add(end - offset, ordering: .relaxed)
                    self.writeBytes(from: end, total: total, context: context)
                case .failure:
                    counters.abandoned.add(1, ordering: .relaxed)
                }
            }
        }
    }
}
