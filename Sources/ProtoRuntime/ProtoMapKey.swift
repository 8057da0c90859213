/// Types that can be map keys: ordered the way upb's deterministic serialization orders them (strings by
/// UTF-8 bytes, integers numerically, false before true), so equal maps encode to equal bytes.
public protocol ProtoMapKey: Hashable, Sendable {
    func _protoOrdersBefore(_ other: Self) -> Bool
    /// The key as a proto3 JSON object key.
    var _protoJSONKey: String { get }
}

extension String: ProtoMapKey {
    public func _protoOrdersBefore(_ other: String) -> Bool {
        utf8.lexicographicallyPrecedes(other.utf8)
    }
    public var _protoJSONKey: String { self }
}

extension Bool: ProtoMapKey {
    public func _protoOrdersBefore(_ other: Bool) -> Bool { !self && other }
    public var _protoJSONKey: String { self ? "true" : "false" }
}

extension Int32: ProtoMapKey {
    public func _protoOrdersBefore(_ other: Int32) -> Bool { self < other }
    public var _protoJSONKey: String { String(self) }
}

extension Int64: ProtoMapKey {
    public func _protoOrdersBefore(_ other: Int64) -> Bool { self < other }
    public var _protoJSONKey: String { String(self) }
}

extension UInt32: ProtoMapKey {
    public func _protoOrdersBefore(_ other: UInt32) -> Bool { self < other }
    public var _protoJSONKey: String { String(self) }
}

extension UInt64: ProtoMapKey {
    public func _protoOrdersBefore(_ other: UInt64) -> Bool { self < other }
    public var _protoJSONKey: String { String(self) }
}

extension ProtobufCDecoding {
    /// A map field: protoc-c represents it as repeated entry messages. A repeated key keeps the last value.
    public static func map<C, K: Hashable, V>(
        _ count: Int,
        _ base: UnsafePointer<UnsafeMutablePointer<C>?>?,
        _ transform: (UnsafeMutablePointer<C>) throws -> (K, V)
    ) rethrows -> [K: V] {
        guard count > 0, let base else { return [:] }
        var result = [K: V](minimumCapacity: count)
        for i in 0..<count {
            let (key, value) = try transform(base[i]!)
            result[key] = value
        }
        return result
    }
}

extension ProtobufCEncoder {
    /// A map field as protoc-c's entry messages, in key order; `fill` initializes each entry.
    public func map<K: ProtoMapKey, V, C>(
        _ values: [K: V],
        _ type: C.Type,
        _ fill: (UnsafeMutablePointer<C>, K, V) throws -> Void
    ) rethrows -> UnsafeMutablePointer<UnsafeMutablePointer<C>?>? {
        guard let out = allocateArray(UnsafeMutablePointer<C>?.self, count: values.count) else { return nil }
        let sorted = values.count > 1 ? values.sorted { $0.key._protoOrdersBefore($1.key) } : Array(values)
        for (i, (key, value)) in sorted.enumerated() {
            let entry = allocate(C.self)
            try fill(entry, key, value)
            (out + i).initialize(to: entry)
        }
        return out
    }
}
