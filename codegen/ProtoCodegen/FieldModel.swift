/// A map field's entry: its key and value fields and the C entry struct.
final class MapModel {
    let key: FieldModel
    let value: FieldModel
    let cTypeName: String
    let cInit: String

    init(key: FieldModel, value: FieldModel, cTypeName: String, cInit: String) {
        self.key = key
        self.value = value
        self.cTypeName = cTypeName
        self.cInit = cInit
    }
}

/// One field as the message generator sees it: Swift names and types, C access, and conversions.
struct FieldModel {
    let field: FieldDescriptor
    /// Property name as declared (quoted if it is a keyword).
    let property: String
    /// The protoc-c struct member.
    let cMember: String
    let storage: CLayout.Storage
    /// Swift type of one value (the element type for repeated fields).
    let valueType: String
    let type: TypeTable.Entry?
    let mapEntry: MapModel?
    let messageName: String

    init(_ field: FieldDescriptor, in message: MessageDescriptor, proto3: Bool, table: TypeTable) throws {
        self.field = field
        property = SwiftNaming.quoted(SwiftNaming.propertyName(field.name))
        cMember = SwiftNaming.quoted(CNaming.fieldName(field.name))
        storage = CLayout.storage(of: field, in: message, proto3: proto3)
        messageName = message.fullName
        if field.kind == .message || field.kind == .enum {
            let entry = try table.entry(field.typeName)
            type = entry
            valueType = entry.swiftName
        } else {
            type = nil
            valueType = try FieldModel.scalarSwiftType(field.kind)
        }
        if let entry = table.mapEntry(of: field) {
            guard entry.fields.count == 2 else { throw CodegenError("\(message.fullName).\(field.name): malformed map entry") }
            let typeEntry = try table.entry(field.typeName)
            mapEntry = MapModel(
                key: try FieldModel(entry.fields[0], in: entry, proto3: proto3, table: table),
                value: try FieldModel(entry.fields[1], in: entry, proto3: proto3, table: table),
                cTypeName: typeEntry.cTypeName, cInit: typeEntry.cFunctionPrefix + "__init"
            )
        } else {
            mapEntry = nil
        }
        if field.kind == .group { throw CodegenError("\(message.fullName).\(field.name): groups are not supported") }
    }

    static func scalarSwiftType(_ kind: FieldDescriptor.Kind) throws -> String {
        switch kind {
        case .int32, .sint32, .sfixed32: "Int32"
        case .int64, .sint64, .sfixed64: "Int64"
        case .uint32, .fixed32: "UInt32"
        case .uint64, .fixed64: "UInt64"
        case .float: "Float"
        case .double: "Double"
        case .bool: "Bool"
        case .string: "String"
        case .bytes: "[UInt8]"
        case .message, .enum, .group: throw CodegenError("not a scalar: \(kind)")
        }
    }

    var isOptionalProperty: Bool {
        field.kind == .message && !field.isRepeated || field.isProto3Optional
    }

    /// The declared Swift type of the property.
    var propertyType: String {
        if let mapEntry { return "[\(mapEntry.key.valueType): \(mapEntry.value.valueType)]" }
        if field.isRepeated { return "[\(valueType)]" }
        return isOptionalProperty ? valueType + "?" : valueType
    }

    var defaultValue: String {
        if mapEntry != nil { return "[:]" }
        if field.isRepeated { return "[]" }
        if isOptionalProperty { return "nil" }
        return zeroValue
    }

    /// The proto3 default of one value.
    var zeroValue: String {
        switch field.kind {
        case .bool: "false"
        case .string: "\"\""
        case .bytes: "[]"
        case .enum: "\(valueType)(rawValue: 0)"
        case .message: "\(valueType)()"
        default: "0"
        }
    }

    /// The C element type of a repeated field, as Swift imports it.
    var cElementType: String {
        switch field.kind {
        case .bool: "protobuf_c_boolean"
        case .string: "UnsafeMutablePointer<CChar>?"
        case .bytes: "ProtobufCBinaryData"
        case .enum: type!.cTypeName
        case .message: "UnsafeMutablePointer<\(type!.cTypeName)>?"
        default: valueType
        }
    }

    /// C and Swift agree on the element layout, so arrays copy as they are.
    var isBitwiseCopyable: Bool {
        switch field.kind {
        case .int32, .sint32, .sfixed32, .int64, .sint64, .sfixed64, .uint32, .fixed32, .uint64, .fixed64,
             .float, .double: true
        default: false
        }
    }

    /// Swift value from a C value expression.
    func fromC(_ c: String) -> String {
        switch field.kind {
        case .bool: "(\(c) != 0)"
        case .string: "try ProtobufCDecoding.string(\(c), field: \"\(field.name)\", in: \"\(messageName)\")"
        case .bytes: "ProtobufCDecoding.bytes(\(c).len, \(c).data)"
        case .enum: "\(valueType)(rawValue: Int32(truncatingIfNeeded: \(c).rawValue))"
        case .message: "try \(valueType)(_protobufC: \(c)!)"
        default: c
        }
    }

    /// C value from a Swift value expression, built with encoder `e`.
    func toC(_ s: String) -> String {
        switch field.kind {
        case .bool: "(\(s) ? 1 : 0)"
        case .string: "try e.string(\(s), field: \"\(field.name)\", in: \"\(messageName)\")"
        case .bytes: "ProtobufCBinaryData(len: \(s).count, data: e.bytes(\(s)))"
        case .enum: "\(type!.cTypeName)(rawValue: .init(truncatingIfNeeded: \(s).rawValue))"
        case .message: "try \(s)._protobufC(e).assumingMemoryBound(to: \(type!.cTypeName).self)"
        default: s
        }
    }

    /// Whether an implicit-presence value differs from its default (and so is encoded).
    func isNonDefault(_ s: String) -> String {
        switch field.kind {
        case .bool: s
        case .string, .bytes: "!\(s).isEmpty"
        case .enum: "\(s).rawValue != 0"
        case .float, .double: "\(s).bitPattern != 0"
        default: "\(s) != 0"
        }
    }

    // MARK: JSON

    /// The statement writing one value to JSONWriter `w`.
    func jsonWrite(_ s: String) -> String {
        switch field.kind {
        case .int32, .sint32, .sfixed32: "w.int32(\(s))"
        case .uint32, .fixed32: "w.uint32(\(s))"
        case .int64, .sint64, .sfixed64: "w.int64(\(s))"
        case .uint64, .fixed64: "w.uint64(\(s))"
        case .float: "w.float(\(s))"
        case .double: "w.double(\(s))"
        case .bool: "w.bool(\(s))"
        case .string: "w.string(\(s))"
        case .bytes: "w.bytes(\(s))"
        case .enum: "w.protoEnum(\(s), options: options)"
        case .message, .group: "try \(s)._encodeJSON(to: &w, options: options)"
        }
    }

    /// An expression reading one value from JSONValue `v`; for enums it is optional (nil: unknown name, ignored).
    func jsonRead(_ v: String) -> String {
        let name = "\"\(field.jsonName)\""
        return switch field.kind {
        case .int32, .sint32, .sfixed32: "try \(v).protoInt32(field: \(name))"
        case .uint32, .fixed32: "try \(v).protoUInt32(field: \(name))"
        case .int64, .sint64, .sfixed64: "try \(v).protoInt64(field: \(name))"
        case .uint64, .fixed64: "try \(v).protoUInt64(field: \(name))"
        case .float: "try \(v).protoFloat(field: \(name))"
        case .double: "try \(v).protoDouble(field: \(name))"
        case .bool: "try \(v).protoBool(field: \(name))"
        case .string: "try \(v).protoString(field: \(name))"
        case .bytes: "try \(v).protoBytes(field: \(name))"
        case .enum: "try \(v).protoEnum(\(valueType).self, field: \(name), options: options)"
        case .message, .group: "try \(valueType)(_json: \(v), options: options)"
        }
    }

    /// Parses a JSON object key of a map.
    func jsonMapKey(_ k: String) -> String {
        let name = "\"\(field.jsonName)\""
        return switch field.kind {
        case .int32, .sint32, .sfixed32: "try ProtoJSONMapKey.int32(\(k), field: \(name))"
        case .uint32, .fixed32: "try ProtoJSONMapKey.uint32(\(k), field: \(name))"
        case .int64, .sint64, .sfixed64: "try ProtoJSONMapKey.int64(\(k), field: \(name))"
        case .uint64, .fixed64: "try ProtoJSONMapKey.uint64(\(k), field: \(name))"
        case .bool: "try ProtoJSONMapKey.bool(\(k), field: \(name))"
        default: k
        }
    }
}
