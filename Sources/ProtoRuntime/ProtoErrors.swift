/// Why bytes could not be decoded as a message. The input is never echoed.
public struct ProtoDecodingError: Error, Sendable, Hashable, CustomStringConvertible {
    public enum Reason: Sendable, Hashable {
        /// protobuf-c rejected the encoding (truncated, bad wire type, length beyond the buffer…).
        case malformed
        /// Decoding would need more memory than ``ProtoDecodingOptions/memoryLimit`` allows.
        case memoryLimitExceeded
        /// A `string` field is not valid UTF-8.
        case invalidUTF8(field: String)
    }

    public var messageName: String
    public var reason: Reason

    public init(messageName: String, reason: Reason) {
        self.messageName = messageName
        self.reason = reason
    }

    public var description: String {
        switch reason {
        case .malformed: "invalid protobuf encoding of \(messageName)"
        case .memoryLimitExceeded: "decoding \(messageName) exceeds the decode memory limit"
        case .invalidUTF8(let field): "\(messageName).\(field) is not valid UTF-8"
        }
    }
}

/// Why a message could not be encoded.
public struct ProtoEncodingError: Error, Sendable, Hashable, CustomStringConvertible {
    public var description: String

    public init(_ description: String) {
        self.description = description
    }
}
