internal import CZlib

/// Message compression for `grpc-encoding` (grpc/grpc `doc/compression.md`): each message is compressed on
/// its own, with a new context.
enum MessageEncoding: String, Sendable, CaseIterable {
    case identity
    case deflate
    case gzip

    /// What we accept, in `grpc-accept-encoding`.
    static let acceptHeader = "identity, deflate, gzip"

    /// The first coding in a `grpc-accept-encoding` list we can use for responses, identity excluded.
    /// Read on the UTF-8 in place: every call has this header, and splitting it into trimmed strings
    /// (an allocation per coding) was 2% of an authenticated call's CPU (perf, PublishEvent).
    static func preferred(fromAcceptHeader header: String?) -> MessageEncoding? {
        guard var header else { return nil }
        return header.withUTF8 { bytes in
            var offersDeflate = false
            var start = 0
            while start <= bytes.count {
                var end = start
                while end < bytes.count, bytes[end] != UInt8(ascii: ",") { end += 1 }
                var first = start
                var last = end
                while first < last, bytes[first] == 0x20 || bytes[first] == 0x09 { first += 1 }
                while last > first, bytes[last - 1] == 0x20 || bytes[last - 1] == 0x09 { last -= 1 }
                let coding = UnsafeBufferPointer(rebasing: bytes[first..<last])
                if coding.elementsEqual("gzip".utf8) { return .gzip }
                if coding.elementsEqual("deflate".utf8) { offersDeflate = true }
                start = end + 1
            }
            return offersDeflate ? .deflate : nil
        }
    }

    fileprivate var windowBits: Int32 {
        switch self {
        case .gzip: 15 + 16
        case .deflate: 15
        case .identity: 0
        }
    }

    struct Failure: Error {
        enum Reason { case invalid, tooLarge }
        var reason: Reason
    }

    /// Decompresses one message, stopping as soon as the output would exceed `limit` bytes (a small
    /// compressed message can expand enormously; grpc-go's `rpc_util.go` also limits the decompressed size).
    func decompress(_ input: [UInt8], limit: Int) throws(Failure) -> [UInt8] {
        guard self != .identity else { return input }
        var stream = z_stream()
        guard CZlib_inflateInit2(&stream, windowBits) == Z_OK else { throw Failure(reason: .invalid) }
        defer { inflateEnd(&stream) }
        var output = [UInt8]()
        var chunk = [UInt8](repeating: 0, count: min(max(input.count * 4, 4096), 1 << 20))
        var result: Int32 = Z_OK
        input.withUnsafeBufferPointer { source in
            stream.next_in = UnsafeMutablePointer(mutating: source.baseAddress)
            stream.avail_in = UInt32(source.count)
            chunk.withUnsafeMutableBufferPointer { buffer in
                repeat {
                    stream.next_out = buffer.baseAddress
                    stream.avail_out = UInt32(buffer.count)
                    result = inflate(&stream, Z_NO_FLUSH)
                    let produced = buffer.count - Int(stream.avail_out)
                    if output.count + produced > limit { result = Z_BUF_ERROR; return }
                    output.append(contentsOf: buffer[0..<produced])
                } while result == Z_OK && (stream.avail_in > 0 || stream.avail_out == 0)
            }
        }
        switch result {
        case Z_STREAM_END: return output
        case Z_BUF_ERROR where output.count >= limit - chunk.count: throw Failure(reason: .tooLarge)
        default: throw Failure(reason: output.count > limit ? .tooLarge : .invalid)
        }
    }

    /// The message compressed, or nil when that would not make it smaller (or zlib cannot start): the
    /// message then goes out uncompressed, with its compressed flag clear (gRPC's PROTOCOL-HTTP2,
    /// "Compressed-Flag"; a sender may leave any message uncompressed).
    func compress(_ input: [UInt8]) -> [UInt8]? {
        guard self != .identity else { return nil }
        var stream = z_stream()
        guard CZlib_deflateInit2(&stream, Z_DEFAULT_COMPRESSION, Z_DEFLATED, windowBits, 8, Z_DEFAULT_STRATEGY) == Z_OK else {
            return nil
        }
        defer { deflateEnd(&stream) }
        // Anything that does not fit below the input's own size is not worth sending compressed.
        var output = [UInt8](repeating: 0, count: input.count)
        let (result, written): (Int32, Int) = input.withUnsafeBufferPointer { source in
            output.withUnsafeMutableBufferPointer { out in
                stream.next_in = UnsafeMutablePointer(mutating: source.baseAddress)
                stream.avail_in = UInt32(source.count)
                stream.next_out = out.baseAddress
                stream.avail_out = UInt32(out.count)
                return (CZlib.deflate(&stream, Z_FINISH), out.count - Int(stream.avail_out))
            }
        }
        guard result == Z_STREAM_END, written < input.count else { return nil }
        output.removeLast(output.count - written)
        return output
    }
}
