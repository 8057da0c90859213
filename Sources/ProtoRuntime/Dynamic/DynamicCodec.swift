internal import CProtobufC
#if canImport(Glibc)
import Glibc
#endif

/// Proto3 JSON to protobuf binary and back for the types of a ``DynamicSchema``: the JSON fills (or is read
/// from) a C struct laid out for the schema's protobuf-c descriptor, and protobuf-c packs (or unpacks) it.
/// `Timestamp`, `Duration`, `FieldMask`, `Empty` and the wrapper types have their special JSON forms; `Any`,
/// `Struct`, `Value` and `ListValue` are refused, as by the code generator.
public struct DynamicCodec: Sendable {
    public let schema: DynamicSchema

    public init(schema: DynamicSchema) {
        self.schema = schema
    }

    /// The binary encoding of `json`, a message of type `typeName`. Unknown fields and values of the wrong
    /// type are errors that name the field.
    public func encode(json: JSONValue, as typeName: String) throws -> [UInt8] {
        try check(typeName)
        var bytes: [UInt8] = []
        try ProtobufCEncoding.pack({ encoder in try fill(typeName, json: json, encoder: encoder) }) { message in
            let size = protobuf_c_message_get_packed_size(message)
            bytes = [UInt8](repeating: 0, count: size)
            bytes.withUnsafeMutableBufferPointer { _ = protobuf_c_message_pack(message, $0.baseAddress) }
        }
        return bytes
    }

    /// `bytes`, a binary message of type `typeName`, as compact proto3 JSON.
    public func decode(_ bytes: [UInt8], as typeName: String, options: ProtoDecodingOptions = .defaults) throws -> String {
        try check(typeName)
        let compiled = schema.compiled(typeName)
        var writer = JSONWriter()
        try bytes.withUnsafeBytes { buffer in
            try ProtobufCDecoding.unpack(UnsafeRawPointer(compiled.descriptor), buffer, options: options, messageName: typeName) { message in
                try write(typeName, at: message, to: &writer)
            }
        }
        return writer.string
    }

    private func check(_ typeName: String) throws {
        guard schema.messages[typeName] != nil else { throw ProtoJSONError(message: "unknown message type \(typeName)") }
        guard !schema.isRecursive(typeName) else {
            throw ProtoJSONError(message: "\(typeName) is recursive (it can contain itself), which is not supported")
        }
    }

    // MARK: JSON → C

    static let refused: Set<String> = ["google.protobuf.Any", "google.protobuf.Struct", "google.protobuf.Value", "google.protobuf.ListValue"]
    static let wrappers: Set<String> = [
        "google.protobuf.DoubleValue", "google.protobuf.FloatValue", "google.protobuf.Int64Value", "google.protobuf.UInt64Value",
        "google.protobuf.Int32Value", "google.protobuf.UInt32Value", "google.protobuf.BoolValue", "google.protobuf.StringValue",
        "google.protobuf.BytesValue",
    ]

    /// A C struct of type `typeName` filled from `json`, in the encoder's arena.
    private func fill(_ typeName: String, json: JSONValue, encoder: ProtobufCEncoder) throws -> UnsafeMutableRawPointer {
        let message = schema.messages[typeName]!
        let compiled = schema.compiled(typeName)
        let raw = UnsafeMutableRawPointer(encoder.allocateArray(UInt8.self, count: compiled.size)!)
        raw.initializeMemory(as: UInt8.self, repeating: 0, count: compiled.size)
        raw.assumingMemoryBound(to: ProtobufCMessage.self).pointee.descriptor = UnsafePointer(compiled.descriptor)
        let object = try Self.canonicalObject(json, typeName: typeName)
        var oneofsSet: [Int: String] = [:]
        for (key, value) in object.entries {
            guard let field = message.field(named: key) else {
                throw ProtoJSONError(message: "\(typeName) has no field \"\(key)\"")
            }
            if case .null = value, field.typeName != "google.protobuf.Value" { continue }
            let slot = compiled.slots[field.number]!
            let target = raw + slot.offset
            switch slot.presence {
            case .count(let countOffset):
                let count: Int
                if let entry = schema.messages[field.typeName], entry.isMapEntry {
                    guard case .object(let map) = value else { throw ProtoJSONError(field: key, message: "expected an object (a map)") }
                    let pointers = encoder.allocateArray(UnsafeMutableRawPointer.self, count: map.entries.count)
                    let keyType = entry.fields.first { $0.number == 1 }?.type
                    for (index, (mapKey, mapValue)) in map.entries.enumerated() {
                        // Map keys are JSON strings; a bool key is "true" or "false", numbers read from strings.
                        var keyJSON = JSONValue.string(mapKey)
                        if keyType == .bool {
                            guard mapKey == "true" || mapKey == "false" else {
                                throw ProtoJSONError(field: key, message: "map key \(mapKey) is not true or false")
                            }
                            keyJSON = .bool(mapKey == "true")
                        }
                        let entryJSON = JSONValue.object(JSONObject([("key", keyJSON), ("value", mapValue)]))
                        (pointers! + index).initialize(to: try fill(field.typeName, json: entryJSON, encoder: encoder))
                    }
                    count = map.entries.count
                    target.storeBytes(of: pointers.map { UnsafeMutableRawPointer($0) }, as: UnsafeMutableRawPointer?.self)
                } else {
                    guard case .array(let items) = value else { throw ProtoJSONError(field: key, message: "expected an array") }
                    let width = field.type == .message ? 8 : DynamicSchema.width(of: field.type)
                    let array = items.isEmpty ? nil : UnsafeMutableRawPointer(encoder.allocateArray(UInt8.self, count: width * items.count)!)
                    for (index, item) in items.enumerated() {
                        try store(item, of: field, at: array! + index * width, encoder: encoder)
                    }
                    count = items.count
                    target.storeBytes(of: array, as: UnsafeMutableRawPointer?.self)
                }
                (raw + countOffset).storeBytes(of: count, as: Int.self)
            case .oneof(let caseOffset):
                if let other = oneofsSet[field.oneofIndex!], other != field.name {
                    throw ProtoJSONError(message: "\(typeName): \(other) and \(field.name) are in the same oneof; give one")
                }
                oneofsSet[field.oneofIndex!] = field.name
                try store(value, of: field, at: target, encoder: encoder)
                (raw + caseOffset).storeBytes(of: UInt32(field.number), as: UInt32.self)
            case .flag(let flagOffset):
                try store(value, of: field, at: target, encoder: encoder)
                (raw + flagOffset).storeBytes(of: Int32(1), as: Int32.self)
            case .implicit, .pointer:
                try store(value, of: field, at: target, encoder: encoder)
            }
        }
        return raw
    }

    /// One value of `field` at `target`.
    private func store(_ value: JSONValue, of field: DynamicSchema.Field, at target: UnsafeMutableRawPointer, encoder: ProtobufCEncoder) throws {
        let key = field.jsonName
        switch field.type {
        case .int32, .sint32, .sfixed32: target.storeBytes(of: try value.protoInt32(field: key), as: Int32.self)
        case .uint32, .fixed32: target.storeBytes(of: try value.protoUInt32(field: key), as: UInt32.self)
        case .int64, .sint64, .sfixed64: target.storeBytes(of: try value.protoInt64(field: key), as: Int64.self)
        case .uint64, .fixed64: target.storeBytes(of: try value.protoUInt64(field: key), as: UInt64.self)
        case .float: target.storeBytes(of: try value.protoFloat(field: key), as: Float.self)
        case .double: target.storeBytes(of: try value.protoDouble(field: key), as: Double.self)
        case .bool: target.storeBytes(of: Int32(try value.protoBool(field: key) ? 1 : 0), as: Int32.self)
        case .string:
            let text = try value.protoString(field: key)
            target.storeBytes(of: UnsafeMutableRawPointer(try encoder.string(text, field: "value", in: field.name)), as: UnsafeMutableRawPointer.self)
        case .bytes:
            let bytes = try value.protoBytes(field: key)
            target.storeBytes(of: ProtobufCBinaryData(len: bytes.count, data: encoder.bytes(bytes)), as: ProtobufCBinaryData.self)
        case .enum:
            target.storeBytes(of: try enumNumber(value, of: field), as: Int32.self)
        case .message, .group:
            target.storeBytes(of: try fill(field.typeName, json: value, encoder: encoder), as: UnsafeMutableRawPointer.self)
        }
    }

    private func enumNumber(_ value: JSONValue, of field: DynamicSchema.Field) throws -> Int32 {
        if case .string(let name) = value {
            guard let number = schema.enums[field.typeName]?.values.first(where: { $0.name == name })?.number else {
                throw ProtoJSONError(field: field.jsonName, message: "\"\(name)\" is not a value of \(field.typeName)")
            }
            return number
        }
        return try value.protoInt32(field: field.jsonName)
    }

    /// The plain JSON object a value stands for: the special forms of the well-known types become the
    /// objects of their fields.
    static func canonicalObject(_ json: JSONValue, typeName: String) throws -> JSONObject {
        if refused.contains(typeName) { throw ProtoJSONError(message: "\(typeName) is not supported") }
        switch (typeName, json) {
        case ("google.protobuf.Timestamp", .string(let text)):
            let (seconds, nanos) = try ProtoJSONTime.parseTimestamp(text)
            return JSONObject([("seconds", .string(String(seconds))), ("nanos", .number(String(nanos)))])
        case ("google.protobuf.Duration", .string(let text)):
            let (seconds, nanos) = try ProtoJSONTime.parseDuration(text)
            return JSONObject([("seconds", .string(String(seconds))), ("nanos", .number(String(nanos)))])
        case ("google.protobuf.FieldMask", .string(let text)):
            return JSONObject([("paths", .array(try ProtoJSONTime.parseFieldMask(text).map { .string($0) }))])
        case (let name, let value) where wrappers.contains(name):
            if case .object(let object) = value, object["value"] != nil { return object }
            return JSONObject([("value", value)])
        case (_, .object(let object)):
            return object
        default:
            throw ProtoJSONError(message: "expected a JSON object for \(typeName)")
        }
    }

    // MARK: C → JSON

    private func write(_ typeName: String, at raw: UnsafeRawPointer, to writer: inout JSONWriter) throws {
        let message = schema.messages[typeName]!
        let compiled = schema.compiled(typeName)
        if try writeSpecial(typeName, message: message, compiled: compiled, at: raw, to: &writer) { return }
        writer.beginObject()
        for field in message.fields {
            let slot = compiled.slots[field.number]!
            let target = raw + slot.offset
            switch slot.presence {
            case .count(let countOffset):
                let count = (raw + countOffset).load(as: Int.self)
                guard count > 0, let array = target.load(as: UnsafeRawPointer?.self) else { continue }
                writer.key(field.jsonName)
                if let entry = schema.messages[field.typeName], entry.isMapEntry {
                    let entryCompiled = schema.compiled(field.typeName)
                    let keyField = entry.fields.first { $0.number == 1 }!
                    let valueField = entry.fields.first { $0.number == 2 }!
                    let entries = (0..<count).map { (array + $0 * 8).load(as: UnsafeRawPointer.self) }
                    let keys = try entries.map { try mapKey(keyField, at: $0 + entryCompiled.slots[1]!.offset, in: typeName) }
                    // A key may come more than once on the wire; the last entry wins.
                    let last = Dictionary(keys.enumerated().map { ($1, $0) }, uniquingKeysWith: { _, later in later })
                    writer.beginObject()
                    for (index, key) in keys.enumerated() where last[key] == index {
                        writer.key(key)
                        try writeValue(valueField, at: entries[index] + entryCompiled.slots[2]!.offset, in: typeName, to: &writer)
                    }
                    writer.endObject()
                } else {
                    let width = field.type == .message ? 8 : DynamicSchema.width(of: field.type)
                    writer.beginArray()
                    for index in 0..<count { try writeValue(field, at: array + index * width, in: typeName, to: &writer) }
                    writer.endArray()
                }
            case .oneof(let caseOffset):
                guard (raw + caseOffset).load(as: UInt32.self) == UInt32(field.number) else { continue }
                writer.key(field.jsonName)
                try writeValue(field, at: target, in: typeName, to: &writer)
            case .flag(let flagOffset):
                guard (raw + flagOffset).load(as: Int32.self) != 0 else { continue }
                writer.key(field.jsonName)
                try writeValue(field, at: target, in: typeName, to: &writer)
            case .pointer:
                guard let pointer = target.load(as: UnsafeRawPointer?.self), pointer != UnsafeRawPointer(CProtobufC_empty_string()) || field.type == .message else { continue }
                writer.key(field.jsonName)
                try writeValue(field, at: target, in: typeName, to: &writer)
            case .implicit:
                // proto2 required fields are always there (protobuf-c refuses a message without them).
                guard field.label == .required || !isDefault(field, at: target) else { continue }
                writer.key(field.jsonName)
                try writeValue(field, at: target, in: typeName, to: &writer)
            }
        }
        writer.endObject()
    }

    private func isDefault(_ field: DynamicSchema.Field, at target: UnsafeRawPointer) -> Bool {
        switch field.type {
        case .int32, .sint32, .sfixed32, .uint32, .fixed32, .enum, .bool: target.load(as: UInt32.self) == 0
        case .float: target.load(as: UInt32.self) == 0  // -0.0 is written, as upb does
        case .int64, .sint64, .sfixed64, .uint64, .fixed64: target.load(as: UInt64.self) == 0
        case .double: target.load(as: UInt64.self) == 0
        case .string:
            // The length is the arena's (see ProtobufCDecoding.string): a string may start with a NUL.
            target.load(as: UnsafePointer<CChar>?.self).map {
                $0 == CProtobufC_empty_string() || Arena.allocationSize(UnsafeRawPointer($0)) <= 1
            } ?? true
        case .bytes: target.load(as: ProtobufCBinaryData.self).len == 0
        case .message, .group: target.load(as: UnsafeRawPointer?.self) == nil
        }
    }

    private func writeValue(_ field: DynamicSchema.Field, at target: UnsafeRawPointer, in typeName: String, to writer: inout JSONWriter) throws {
        switch field.type {
        case .int32, .sint32, .sfixed32: writer.int32(target.load(as: Int32.self))
        case .uint32, .fixed32: writer.uint32(target.load(as: UInt32.self))
        case .int64, .sint64, .sfixed64: writer.int64(target.load(as: Int64.self))
        case .uint64, .fixed64: writer.uint64(target.load(as: UInt64.self))
        case .float: writer.float(target.load(as: Float.self))
        case .double: writer.double(target.load(as: Double.self))
        case .bool: writer.bool(target.load(as: Int32.self) != 0)
        case .string:
            writer.string(try ProtobufCDecoding.string(target.load(as: UnsafePointer<CChar>?.self), field: "value", in: typeName))
        case .bytes:
            let data = target.load(as: ProtobufCBinaryData.self)
            writer.bytes(ProtobufCDecoding.bytes(data.len, data.data))
        case .enum:
            let number = target.load(as: Int32.self)
            if let name = schema.enums[field.typeName]?.values.first(where: { $0.number == number })?.name {
                writer.string(name)
            } else {
                writer.int32(number)
            }
        case .message, .group:
            guard let pointer = target.load(as: UnsafeRawPointer?.self) else {
                // Only a map entry's value can be absent here; it stands for the type's default.
                let size = schema.compiled(field.typeName).size
                let zeroed = UnsafeMutableRawPointer.allocate(byteCount: size, alignment: 8)
                defer { zeroed.deallocate() }
                zeroed.initializeMemory(as: UInt8.self, repeating: 0, count: size)
                return try write(field.typeName, at: zeroed, to: &writer)
            }
            try write(field.typeName, at: pointer, to: &writer)
        }
    }

    private func mapKey(_ field: DynamicSchema.Field, at target: UnsafeRawPointer, in typeName: String) throws -> String {
        switch field.type {
        case .string: try ProtobufCDecoding.string(target.load(as: UnsafePointer<CChar>?.self), field: "key", in: typeName)
        case .bool: target.load(as: Int32.self) != 0 ? "true" : "false"
        case .int32, .sint32, .sfixed32: String(target.load(as: Int32.self))
        case .uint32, .fixed32: String(target.load(as: UInt32.self))
        case .int64, .sint64, .sfixed64: String(target.load(as: Int64.self))
        default: String(target.load(as: UInt64.self))
        }
    }

    /// The well-known types with a JSON form of their own; false for every other type.
    private func writeSpecial(
        _ typeName: String, message: DynamicSchema.Message, compiled: DynamicSchema.Compiled, at raw: UnsafeRawPointer,
        to writer: inout JSONWriter
    ) throws -> Bool {
        func field(_ number: Int32) -> UnsafeRawPointer { raw + compiled.slots[number]!.offset }
        switch typeName {
        case "google.protobuf.Timestamp":
            writer.string(try ProtoJSONTime.formatTimestamp(seconds: field(1).load(as: Int64.self), nanos: field(2).load(as: Int32.self)))
        case "google.protobuf.Duration":
            writer.string(try ProtoJSONTime.formatDuration(seconds: field(1).load(as: Int64.self), nanos: field(2).load(as: Int32.self)))
        case "google.protobuf.FieldMask":
            let count = (raw + { if case .count(let offset) = compiled.slots[1]!.presence { offset } else { 0 } }()).load(as: Int.self)
            let array = field(1).load(as: UnsafeRawPointer?.self)
            let paths = try (0..<count).map { index in
                try ProtobufCDecoding.string((array! + index * 8).load(as: UnsafePointer<CChar>?.self), field: "paths", in: typeName)
            }
            writer.string(try ProtoJSONTime.formatFieldMask(paths: paths))
        case let name where Self.wrappers.contains(name):
            try writeValue(message.fields.first { $0.number == 1 }!, at: field(1), in: typeName, to: &writer)
        default:
            return false
        }
        return true
    }
}
