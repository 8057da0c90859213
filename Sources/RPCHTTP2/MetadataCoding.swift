import ProtoRuntime
import RPCCore

/// Custom metadata in HTTP/2 header fields (gRPC PROTOCOL-HTTP2.md, Custom-Metadata).
enum MetadataCoding {
    /// Header names that are part of the protocol, never custom metadata.
    static func isReserved(_ name: String) -> Bool {
        name.hasPrefix(":") || name == "content-type" || name == "te" || name == "grpc-timeout"
            || name == "grpc-encoding" || name == "grpc-accept-encoding" || name == "grpc-message-type"
            || name == "grpc-status" || name == "grpc-message" || name == "content-length"
            || name == "connection" || name == "host"
    }

    struct InvalidBinaryValue: Error {
        var name: String
    }

    /// Adds one received header to `metadata`. `-bin` values are base64 (padded or not), possibly several
    /// joined with `,`. A text value outside printable ASCII (gRPC PROTOCOL-HTTP2.md, ASCII-Value) arrives
    /// empty: its bytes are not passed on, but its presence is, so that an `authorization` header with a
    /// non-ASCII byte is reported as malformed rather than missing.
    static func add(name: String, value: String, to metadata: inout Metadata) throws {
        if name.hasSuffix("-bin") {
            for part in value.split(separator: ",", omittingEmptySubsequences: false) {
                let trimmed = part.trimmingSpaces
                guard let bytes = try? Base64.decode(trimmed) else { throw InvalidBinaryValue(name: name) }
                metadata.addBinary(bytes, forKey: name)
            }
        } else {
            metadata.addString(printableTrimmed(value) ?? "", forKey: name)
        }
    }

    /// `value` without surrounding spaces when every byte is printable ASCII, else nil. On the contiguous
    /// UTF-8, without a copy when there is nothing to trim: an `authorization` value is some 800 bytes, and
    /// checking it through the generic UTF-8 view was a percent of an authenticated call.
    static func printableTrimmed(_ value: String) -> String? {
        var copy = value
        let bounds: Range<Int>? = copy.withUTF8 { bytes in
            guard isPrintableASCII(bytes) else { return nil }
            var start = 0
            var end = bytes.count
            while start < end, bytes[start] == 0x20 { start += 1 }
            while end > start, bytes[end - 1] == 0x20 { end -= 1 }
            return start..<end
        }
        guard let bounds else { return nil }
        if bounds.count == value.utf8.count { return value }
        return copy.withUTF8 { String(decoding: UnsafeBufferPointer(rebasing: $0[bounds]), as: UTF8.self) }
    }

    /// Every byte is printable ASCII (0x20–0x7E). Eight bytes at a time (the bit tests of Sean Anderson's "Bit
    /// Twiddling Hacks", "Determine if a word has a byte less than n"): the byte loop over an 800-byte
    /// `authorization` value was close to 2% of an authenticated call's CPU.
    static func isPrintableASCII(_ bytes: UnsafeBufferPointer<UInt8>) -> Bool {
        let ones: UInt64 = 0x0101_0101_0101_0101
        let highBits: UInt64 = 0x8080_8080_8080_8080
        let raw = UnsafeRawBufferPointer(bytes)
        var offset = 0
        while offset + 8 <= raw.count {
            let word = raw.loadUnaligned(fromByteOffset: offset, as: UInt64.self)
            // A byte of 0x80 or more; below 0x20 (exact once no byte has its high bit); 0x7F (zero after the XOR).
            let below = (word &- 0x20 &* ones) & ~word & highBits
            let delete = word ^ (0x7F &* ones)
            let isDelete = (delete &- ones) & ~delete & highBits
            if word & highBits | below | isDelete != 0 { return false }
            offset += 8
        }
        while offset < raw.count {
            guard raw[offset] >= 0x20, raw[offset] <= 0x7E else { return false }
            offset += 1
        }
        return true
    }

    /// Header fields for metadata being sent: `-bin` values base64 without padding. Reserved names and
    /// values that are not printable ASCII are left out.
    static func headers(for metadata: Metadata) -> [(String, String)] {
        metadata.compactMap { entry in
            guard !isReserved(entry.key) else { return nil }
            switch entry.value {
            case .binary(let bytes):
                return (entry.key, Base64.encode(bytes).trimmingEquals)
            case .string(let s):
                guard s.utf8.allSatisfy({ $0 >= 0x20 && $0 <= 0x7E }) else { return nil }
                return (entry.key, s)
            }
        }
    }
}

extension StringProtocol {
    var trimmingSpaces: String {
        let utf8 = Array(self.utf8)
        var start = 0
        var end = utf8.count
        while start < end, utf8[start] == 0x20 || utf8[start] == 0x09 { start += 1 }
        while end > start, utf8[end - 1] == 0x20 || utf8[end - 1] == 0x09 { end -= 1 }
        return String(decoding: utf8[start..<end], as: UTF8.self)
    }

    var trimmingEquals: String {
        var s = String(self)
        while s.hasSuffix("=") { s.removeLast() }
        return s
    }
}
