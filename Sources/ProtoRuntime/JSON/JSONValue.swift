/// A parsed JSON document node.
///
/// Numbers keep their literal source text so that 64-bit integers and other exact values survive
/// without a round trip through `Double`.
public enum JSONValue: Sendable, Hashable {
    /// The JSON `null` literal.
    case null
    /// A JSON `true` or `false` literal.
    case bool(Bool)
    /// A JSON number, stored as its literal text exactly as it appeared (for example `"-1.5e3"`).
    case number(String)
    /// A JSON string with all escapes resolved.
    case string(String)
    /// A JSON array.
    case array([JSONValue])
    /// A JSON object, with members in source order.
    case object(JSONObject)
}

/// A JSON object that keeps its members in source order.
///
/// Equality and hashing are order-sensitive: two objects are equal when they have the same
/// members in the same order.
public struct JSONObject: Sendable, Hashable {
    /// The object members in source order.
    public var entries: [(key: String, value: JSONValue)]

    /// Creates an empty object.
    public init() {
        entries = []
    }

    /// Creates an object with the given members, kept in the given order.
    public init(_ entries: [(key: String, value: JSONValue)]) {
        self.entries = entries
    }

    /// The value of the first member named `key`, or `nil` if there is none (linear search).
    public subscript(key: String) -> JSONValue? {
        for entry in entries where entry.key == key {
            return entry.value
        }
        return nil
    }

    /// Whether both objects have the same members in the same order.
    public static func == (lhs: JSONObject, rhs: JSONObject) -> Bool {
        guard lhs.entries.count == rhs.entries.count else { return false }
        for (l, r) in zip(lhs.entries, rhs.entries) where l.key != r.key || l.value != r.value {
            return false
        }
        return true
    }

    /// Hashes the members in order, consistently with `==`.
    public func hash(into hasher: inout Hasher) {
        hasher.combine(entries.count)
        for entry in entries {
            hasher.combine(entry.key)
            hasher.combine(entry.value)
        }
    }
}
