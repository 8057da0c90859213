/// How messages are written as proto3 JSON.
public struct JSONEncodingOptions: Sendable {
    /// Use the `.proto` field names (`display_name`) instead of the lowerCamel JSON names (`displayName`).
    public var preserveProtoFieldNames = false
    /// Write enum values as numbers instead of names.
    public var enumsAsIntegers = false

    public init() {}

    public static var defaults: Self { .init() }
}

/// How proto3 JSON is read.
public struct JSONDecodingOptions: Sendable {
    /// Skip object members (and enum names) the schema does not know instead of failing.
    public var ignoreUnknownFields = false
    /// Deepest nesting of arrays and objects accepted.
    public var maxDepth = 100

    public init() {}

    public static var defaults: Self { .init() }
}

extension ProtoMessage {
    /// The proto3 JSON mapping, compact.
    public func jsonString(options: JSONEncodingOptions = .defaults) throws -> String {
        var writer = JSONWriter()
        try _encodeJSON(to: &writer, options: options)
        return writer.string
    }

    public func jsonUTF8Bytes(options: JSONEncodingOptions = .defaults) throws -> [UInt8] {
        var writer = JSONWriter()
        try _encodeJSON(to: &writer, options: options)
        return writer.bytes
    }

    public init(jsonString: String, options: JSONDecodingOptions = .defaults) throws {
        try self.init(_json: try JSONParser.parse(jsonString, maxDepth: options.maxDepth), options: options)
    }

    public init(jsonUTF8Bytes: [UInt8], options: JSONDecodingOptions = .defaults) throws {
        try self.init(_json: try JSONParser.parse(jsonUTF8Bytes, maxDepth: options.maxDepth), options: options)
    }
}

extension ProtoJSONError {
    public init(unknownField key: String, in message: String) {
        self.init(message: "\(message) has no field named \"\(key)\"")
    }
}

extension JSONValue {
    public var isNull: Bool {
        if case .null = self { return true }
        return false
    }

    /// The object a message is written as.
    public func protoObject(message: String) throws -> JSONObject {
        guard case .object(let object) = self else {
            throw ProtoJSONError(message: "expected a JSON object for \(message)")
        }
        return object
    }

    /// The array of a repeated field; `null` is an empty one.
    public func protoArray(field: String) throws -> [JSONValue] {
        switch self {
        case .null: return []
        case .array(let elements): return elements
        default: throw ProtoJSONError(message: "field \"\(field)\": expected an array")
        }
    }

    /// A map field; `transform` turns each member into an entry, or nil to skip it (an unknown enum name).
    public func protoMap<K: Hashable, V>(
        field: String,
        _ transform: (String, JSONValue) throws -> (K, V)?
    ) throws -> [K: V] {
        switch self {
        case .null:
            return [:]
        case .object(let object):
            var result = [K: V](minimumCapacity: object.entries.count)
            for (key, value) in object.entries {
                guard !value.isNull else { throw ProtoJSONError(message: "field \"\(field)\": map values cannot be null") }
                if let (k, v) = try transform(key, value) { result[k] = v }
            }
            return result
        default:
            throw ProtoJSONError(message: "field \"\(field)\": expected an object")
        }
    }

    /// An enum value given by name or number; nil when the name is unknown and unknown fields are ignored.
    public func protoEnum<E: ProtoEnum>(_ type: E.Type, field: String, options: JSONDecodingOptions) throws -> E? {
        switch self {
        case .string(let name):
            if let value = E(protoName: name) { return value }
            if options.ignoreUnknownFields { return nil }
            throw ProtoJSONError(message: "field \"\(field)\": unknown enum value \"\(name)\"")
        case .number:
            return E(rawValue: try protoInt32(field: field))
        default:
            throw ProtoJSONError(message: "field \"\(field)\": expected an enum name or number")
        }
    }
}

extension JSONWriter {
    /// An enum value: its name, or its number when it has none (or numbers are asked for).
    public mutating func protoEnum<E: ProtoEnum>(_ value: E, options: JSONEncodingOptions) {
        if !options.enumsAsIntegers, let name = value.protoName {
            string(name)
        } else {
            int32(value.rawValue)
        }
    }
}

/// Helpers for generated JSON decoders.
public enum ProtoJSONDecoding {
    /// For messages without fields: any member is unknown.
    public static func rejectUnknownFields(in value: JSONValue, message: String, options: JSONDecodingOptions) throws {
        guard !options.ignoreUnknownFields, case .object(let object) = value, let first = object.entries.first else { return }
        throw ProtoJSONError(unknownField: first.key, in: message)
    }
}
