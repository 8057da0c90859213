import ProtoRuntime

/// A DynamoDB attribute value as the AWS JSON 1.0 protocol writes it (`{"S": "x"}`, `{"N": "1"}` …).
indirect enum AttributeValue: Sendable, Hashable {
    case s(String)
    /// Numbers travel as decimal text.
    case n(String)
    case b([UInt8])
    case bool(Bool)
    case null
    case l([AttributeValue])
    case m([String: AttributeValue])
    case ss([String])

    static func int(_ value: Int64) -> AttributeValue { .n(String(value)) }
    static func int(_ value: Int) -> AttributeValue { .n(String(value)) }

    var string: String? { if case .s(let value) = self { value } else { nil } }
    var bytes: [UInt8]? { if case .b(let value) = self { value } else { nil } }
    var boolean: Bool? { if case .bool(let value) = self { value } else { nil } }
    var int64: Int64? { if case .n(let value) = self { Int64(value) } else { nil } }
    var map: [String: AttributeValue]? { if case .m(let value) = self { value } else { nil } }
    var list: [AttributeValue]? { if case .l(let value) = self { value } else { nil } }

    var json: JSONValue {
        switch self {
        case .s(let value): .object(JSONObject([("S", .string(value))]))
        case .n(let value): .object(JSONObject([("N", .string(value))]))
        case .b(let value): .object(JSONObject([("B", .string(Base64.encode(value)))]))
        case .bool(let value): .object(JSONObject([("BOOL", .bool(value))]))
        case .null: .object(JSONObject([("NULL", .bool(true))]))
        case .l(let values): .object(JSONObject([("L", .array(values.map(\.json)))]))
        case .m(let item): .object(JSONObject([("M", Item.json(item))]))
        case .ss(let values): .object(JSONObject([("SS", .array(values.map { .string($0) }))]))
        }
    }

    init(json: JSONValue) throws {
        guard case .object(let object) = json, object.entries.count == 1, let (type, value) = object.entries.first else {
            throw DynamoDBFormatError("an attribute value is not a one-member object")
        }
        switch (type, value) {
        case ("S", .string(let text)): self = .s(text)
        case ("N", .string(let text)): self = .n(text)
        case ("B", .string(let text)):
            guard let bytes = try? Base64.decode(text) else { throw DynamoDBFormatError("a binary attribute is not base64") }
            self = .b(bytes)
        case ("BOOL", .bool(let flag)): self = .bool(flag)
        case ("NULL", _): self = .null
        case ("L", .array(let values)): self = .l(try values.map(AttributeValue.init(json:)))
        case ("M", .object): self = .m(try Item.decode(value))
        case ("SS", .array(let values)):
            self = .ss(try values.map { value in
                guard case .string(let text) = value else { throw DynamoDBFormatError("a string set holds a non-string") }
                return text
            })
        default:
            throw DynamoDBFormatError("unsupported attribute type \(type)")
        }
    }
}

/// An item: attribute names to values.
typealias Item = [String: AttributeValue]

extension Item {
    /// Members in name order, so equal items encode to equal bytes.
    static func json(_ item: Item) -> JSONValue {
        .object(JSONObject(item.sorted { $0.key < $1.key }.map { ($0.key, $0.value.json) }))
    }

    static func decode(_ json: JSONValue) throws -> Item {
        guard case .object(let object) = json else { throw DynamoDBFormatError("an item is not an object") }
        var item: Item = [:]
        for (name, value) in object.entries { item[name] = try AttributeValue(json: value) }
        return item
    }
}

/// A reply that does not have the shape DynamoDB documents.
struct DynamoDBFormatError: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}

/// Builds JSON objects with less noise: `object(["TableName": .string(t), "Key": …])` keeps insertion order.
func object(_ entries: KeyValuePairs<String, JSONValue?>) -> JSONValue {
    .object(JSONObject(entries.compactMap { entry in entry.value.map { (entry.key, $0) } }))
}

extension JSONValue {
    subscript(key: String) -> JSONValue? {
        if case .object(let object) = self { object[key] } else { nil }
    }

    var stringValue: String? { if case .string(let text) = self { text } else { nil } }
    var arrayValue: [JSONValue]? { if case .array(let values) = self { values } else { nil } }
    var int64Value: Int64? { if case .number(let text) = self { Int64(text) } else { nil } }
}
