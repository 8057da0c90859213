/// gRPC metadata: ordered key-value pairs with lower-case keys. Keys ending in `-bin` carry bytes; all others
/// carry printable ASCII strings (grpc/grpc `doc/PROTOCOL-HTTP2.md`).
public struct Metadata: Sendable, Hashable, ExpressibleByDictionaryLiteral, RandomAccessCollection {
    public enum Value: Sendable, Hashable, CustomStringConvertible, ExpressibleByStringLiteral {
        case string(String)
        case binary([UInt8])

        public init(stringLiteral value: String) {
            self = .string(value)
        }

        public var description: String {
            switch self {
            case .string(let s): s
            case .binary(let b): "<\(b.count) bytes>"
            }
        }
    }

    public typealias Element = (key: String, value: Value)

    private var entries: [Element] = []

    public init() {}

    public init(dictionaryLiteral elements: (String, Value)...) {
        for (k, v) in elements { add(v, forKey: k) }
    }

    public var startIndex: Int { entries.startIndex }
    public var endIndex: Int { entries.endIndex }
    public subscript(position: Int) -> Element { entries[position] }

    /// Appends a string value; the key is lower-cased.
    public mutating func addString(_ value: String, forKey key: String) {
        entries.append((key.lowercased(), .string(value)))
    }

    /// Appends a binary value; the key must end in `-bin`.
    public mutating func addBinary(_ value: [UInt8], forKey key: String) {
        let key = key.lowercased()
        precondition(key.hasSuffix("-bin"), "binary metadata keys end in -bin")
        entries.append((key, .binary(value)))
    }

    public mutating func add(_ value: Value, forKey key: String) {
        switch value {
        case .string(let s): addString(s, forKey: key)
        case .binary(let b): addBinary(b, forKey: key)
        }
    }

    public mutating func add(contentsOf other: Metadata) {
        entries.append(contentsOf: other.entries)
    }

    public mutating func removeAll(forKey key: String) {
        let key = key.lowercased()
        entries.removeAll { $0.key == key }
    }

    /// Every string value for `key`, in order.
    public subscript(stringValues key: String) -> [String] {
        let key = key.lowercased()
        return entries.compactMap { e in
            guard e.key == key, case .string(let s) = e.value else { return nil }
            return s
        }
    }

    /// Every binary value for `key`, in order.
    public subscript(binaryValues key: String) -> [[UInt8]] {
        let key = key.lowercased()
        return entries.compactMap { e in
            guard e.key == key, case .binary(let b) = e.value else { return nil }
            return b
        }
    }

    /// The first string value for `key`.
    public func first(_ key: String) -> String? {
        self[stringValues: key].first
    }

    public static func == (lhs: Metadata, rhs: Metadata) -> Bool {
        lhs.entries.elementsEqual(rhs.entries) { $0.key == $1.key && $0.value == $1.value }
    }

    public func hash(into hasher: inout Hasher) {
        hasher.combine(entries.count)
        for e in entries {
            hasher.combine(e.key)
            hasher.combine(e.value)
        }
    }
}
