/// Generates the Swift struct for one message (and, nested in it, its messages, enums and oneofs), with its
/// protobuf-c bridge and proto3 JSON mapping.
struct MessageGenerator {
    let message: MessageDescriptor
    let swiftName: String
    let entry: TypeTable.Entry
    let fields: [FieldModel]
    let table: TypeTable
    let proto3: Bool

    init(_ message: MessageDescriptor, table: TypeTable, proto3: Bool) throws {
        self.message = message
        self.table = table
        self.proto3 = proto3
        entry = try table.entry("." + message.fullName)
        swiftName = entry.swiftName
        fields = try message.fields.map { try FieldModel($0, in: message, proto3: proto3, table: table) }
        var seen = Set<String>()
        for f in fields where !seen.insert(f.property).inserted {
            throw CodegenError("\(message.fullName): two fields map to the Swift name \(f.property)")
        }
    }

    private var shortName: String { String(swiftName.split(separator: ".").last!) }

    /// Fields outside real oneofs (proto3 optional fields included), in declaration order.
    private var plainFields: [FieldModel] {
        fields.filter { f in f.field.oneofIndex.map { message.oneofs[$0].isSynthetic } ?? true }
    }

    private var realOneofs: [(index: Int, name: String, members: [FieldModel])] {
        message.oneofs.enumerated().compactMap { i, o in
            o.isSynthetic ? nil : (i, o.name, fields.filter { $0.field.oneofIndex == i })
        }
    }

    private func oneofProperty(_ name: String) -> String { SwiftNaming.quoted(SwiftNaming.propertyName(name)) }
    private func oneofType(_ name: String) -> String { "OneOf_" + SwiftNaming.upperCamel(name) }
    private func caseName(_ f: FieldModel) -> String { SwiftNaming.quoted(SwiftNaming.propertyName(f.field.name)) }

    // MARK: Declaration

    func declaration(_ w: inout CodeWriter) throws {
        try w.block("public struct \(shortName): ProtoMessage") { w in
            for f in plainFields {
                w.line("public var \(f.property): \(f.propertyType) = \(f.defaultValue)")
            }
            for o in realOneofs {
                w.line("public var \(oneofProperty(o.name)): \(oneofType(o.name))? = nil")
            }
            w.line("public var unknownFields = UnknownFields()")
            w.line()
            w.line("public init() {}")
            for o in realOneofs {
                w.line()
                w.block("public enum \(oneofType(o.name)): Sendable, Hashable") { w in
                    for f in o.members { w.line("case \(caseName(f))(\(f.valueType))") }
                }
            }
            for nested in message.messages where !nested.isMapEntry {
                w.line()
                try MessageGenerator(nested, table: table, proto3: proto3).declaration(&w)
            }
            for e in message.enums {
                w.line()
                try EnumGenerator(e, swiftName: try table.entry("." + e.fullName).swiftName).declaration(&w)
            }
        }
    }

    /// The bridge and JSON extensions, for this message and its nested messages.
    func extensions(_ w: inout CodeWriter) throws {
        w.line()
        try w.block("extension \(swiftName)") { w in
            w.line("public static let protoMessageName = \"\(message.fullName)\"")
            w.line()
            try bridge(&w)
            w.line()
            try json(&w)
        }
        for nested in message.messages where !nested.isMapEntry {
            try MessageGenerator(nested, table: table, proto3: proto3).extensions(&w)
        }
    }

    // MARK: protobuf-c

    private func bridge(_ w: inout CodeWriter) throws {
        let c = entry.cTypeName
        let cInit = entry.cFunctionPrefix + "__init"
        w.block("nonisolated(unsafe) private static let _descriptor: UnsafeRawPointer =", footer: "}()") { w in
            w.line("var m = \(c)()")
            w.line("\(cInit)(&m)")
            w.line("return UnsafeRawPointer(m.base.descriptor)")
        }
        w.line("public static var _protobufCDescriptor: UnsafeRawPointer { _descriptor }")
        w.line()
        try w.block("public init(_protobufC raw: UnsafeRawPointer) throws") { w in
            let unused = fields.isEmpty
            w.line("\(unused ? "_" : "let m") = raw.assumingMemoryBound(to: \(c).self)")
            w.line("self.init()")
            for f in plainFields { try decodeC(f, &w) }
            for o in realOneofs {
                guard case .oneof(let caseField) = o.members[0].storage else { continue }
                w.block("switch m.pointee.\(caseField).rawValue") { w in
                    for f in o.members {
                        w.line("case \(f.field.number): self.\(oneofProperty(o.name)) = .\(caseName(f))(\(f.fromC("m.pointee.\(f.cMember)")))")
                    }
                    w.line("default: break")
                }
            }
            w.line("self.unknownFields = try ProtobufCDecoding.unknownFields(of: raw, in: Self.protoMessageName)")
        }
        w.line()
        try w.block("public func _protobufC(_ e: ProtobufCEncoder) throws -> UnsafeMutableRawPointer") { w in
            w.line("let m = e.allocate(\(c).self)")
            w.line("\(cInit)(m)")
            for f in plainFields { try encodeC(f, &w) }
            for o in realOneofs {
                guard case .oneof(let caseField) = o.members[0].storage else { continue }
                w.block("switch self.\(oneofProperty(o.name))") { w in
                    for f in o.members {
                        w.line("case .\(caseName(f))(let v)?:")
                        w.line("    m.pointee.\(caseField) = .init(rawValue: \(f.field.number))")
                        w.line("    m.pointee.\(f.cMember) = \(f.toC("v"))")
                    }
                    w.line("case nil: break")
                }
            }
            w.line("e.setUnknownFields(unknownFields, on: m)")
            w.line("return UnsafeMutableRawPointer(m)")
        }
    }

    private func decodeC(_ f: FieldModel, _ w: inout CodeWriter) throws {
        let member = "m.pointee.\(f.cMember)"
        let target = "self.\(f.property)"
        if let map = f.mapEntry {
            guard case .oneof(let keyCase) = map.key.storage, case .oneof(let valueCase) = map.value.storage else {
                throw CodegenError("map entry without presence")
            }
            let key = map.key.fromC("entry.pointee.\(map.key.cMember)")
            let value = map.value.fromC("entry.pointee.\(map.value.cMember)")
            let tryMap = key.hasPrefix("try") || value.hasPrefix("try") ? "try " : ""
            w.block("\(target) = \(tryMap)ProtobufCDecoding.map(\(member.replacingLast("n_")), \(member)) { entry in") { w in
                w.line("var key: \(map.key.valueType) = \(map.key.zeroValue)")
                w.line("if entry.pointee.\(keyCase).rawValue == 1 { key = \(key) }")
                w.line("var value: \(map.value.valueType) = \(map.value.zeroValue)")
                w.line("if entry.pointee.\(valueCase).rawValue == 2 { value = \(value) }")
                w.line("return (key, value)")
            }
            return
        }
        switch f.storage {
        case .repeated:
            let count = member.replacingLast("n_")
            if f.isBitwiseCopyable {
                w.line("\(target) = ProtobufCDecoding.array(\(count), \(member))")
            } else {
                let conversion = f.fromC("v")
                w.line("\(target) = \(conversion.hasPrefix("try") ? "try " : "")ProtobufCDecoding.array(\(count), \(member)) { v in \(conversion) }")
            }
        case .oneof(let caseField):
            w.line("if m.pointee.\(caseField).rawValue == \(f.field.number) { \(target) = \(f.fromC(member)) }")
        case .pointer:
            w.line("if let p = \(member) { \(target) = try \(f.valueType)(_protobufC: p) }")
        case .implicit:
            w.line("\(target) = \(f.fromC(member))")
        }
    }

    private func encodeC(_ f: FieldModel, _ w: inout CodeWriter) throws {
        let member = "m.pointee.\(f.cMember)"
        let value = "self.\(f.property)"
        if let map = f.mapEntry {
            guard case .oneof(let keyCase) = map.key.storage, case .oneof(let valueCase) = map.value.storage else {
                throw CodegenError("map entry without presence")
            }
            w.block("if !\(value).isEmpty") { w in
                w.line("\(member.replacingLast("n_")) = \(value).count")
                let key = map.key.toC("key")
                let entryValue = map.value.toC("value")
                let tryMap = key.hasPrefix("try") || entryValue.hasPrefix("try") ? "try " : ""
                w.block("\(member) = \(tryMap)e.map(\(value), \(map.cTypeName).self) { entry, key, value in") { w in
                    w.line("\(map.cInit)(entry)")
                    w.line("entry.pointee.\(keyCase) = .init(rawValue: 1)")
                    w.line("entry.pointee.\(map.key.cMember) = \(key)")
                    w.line("entry.pointee.\(valueCase) = .init(rawValue: 2)")
                    w.line("entry.pointee.\(map.value.cMember) = \(entryValue)")
                }
            }
            return
        }
        switch f.storage {
        case .repeated:
            w.block("if !\(value).isEmpty") { w in
                w.line("\(member.replacingLast("n_")) = \(value).count")
                if f.isBitwiseCopyable {
                    w.line("\(member) = e.array(\(value))")
                } else {
                    let conversion = f.toC("v")
                    w.line("\(member) = \(conversion.hasPrefix("try") ? "try " : "")e.array(\(value), \(f.cElementType).self) { v in \(conversion) }")
                }
            }
        case .oneof(let caseField) where f.field.isProto3Optional:
            w.block("if let v = \(value)") { w in
                w.line("m.pointee.\(caseField) = .init(rawValue: \(f.field.number))")
                w.line("\(member) = \(f.toC("v"))")
            }
        case .oneof(let caseField):
            // A float or double given explicit presence in C, set exactly when its bits are non-zero.
            w.block("if \(f.isNonDefault(value))") { w in
                w.line("m.pointee.\(caseField) = .init(rawValue: \(f.field.number))")
                w.line("\(member) = \(value)")
            }
        case .pointer:
            w.line("if let v = \(value) { \(member) = \(f.toC("v")) }")
        case .implicit:
            if f.field.kind == .string || f.field.kind == .bytes {
                w.line("if \(f.isNonDefault(value)) { \(member) = \(f.toC(value)) }")
            } else {
                w.line("\(member) = \(f.toC(value))")
            }
        }
    }

    // MARK: JSON

    private func json(_ w: inout CodeWriter) throws {
        if let special = WellKnownJSON(rawValue: message.fullName) {
            special.write(&w)
            return
        }
        if WellKnownJSON.unsupported.contains(message.fullName) {
            throw CodegenError("\(message.fullName): its special proto3 JSON form is not supported yet")
        }
        w.block("public func _encodeJSON(to w: inout JSONWriter, options: JSONEncodingOptions) throws") { w in
            w.line("w.beginObject()")
            for f in plainFields { encodeJSON(f, &w) }
            for o in realOneofs {
                w.block("switch self.\(oneofProperty(o.name))") { w in
                    for f in o.members {
                        w.line("case .\(caseName(f))(let v)?:")
                        w.line("    \(jsonKey(f))")
                        w.line("    \(f.jsonWrite("v"))")
                    }
                    w.line("case nil: break")
                }
            }
            w.line("w.endObject()")
        }
        w.line()
        w.block("public init(_json value: JSONValue, options: JSONDecodingOptions) throws") { w in
            w.line("self.init()")
            let object = fields.isEmpty ? "_" : "let object"
            w.line("\(object) = try value.protoObject(message: Self.protoMessageName)")
            if fields.isEmpty {
                w.line("try ProtoJSONDecoding.rejectUnknownFields(in: value, message: Self.protoMessageName, options: options)")
                return
            }
            w.block("for (key, v) in object.entries") { w in
                w.block("switch key") { w in
                    for f in plainFields { decodeJSON(f, &w) }
                    for o in realOneofs {
                        for f in o.members {
                            w.line("case \(jsonNames(f)):")
                            if f.field.kind == .enum {
                                w.line("    if !v.isNull, let e = \(f.jsonRead("v")) { self.\(oneofProperty(o.name)) = .\(caseName(f))(e) }")
                            } else {
                                w.line("    if !v.isNull { self.\(oneofProperty(o.name)) = .\(caseName(f))(\(f.jsonRead("v"))) }")
                            }
                        }
                    }
                    w.line("default:")
                    w.line("    guard options.ignoreUnknownFields else { throw ProtoJSONError(unknownField: key, in: Self.protoMessageName) }")
                }
            }
        }
    }

    private func jsonKey(_ f: FieldModel) -> String {
        f.field.jsonName == f.field.name
            ? "w.key(\"\(f.field.name)\")"
            : "w.key(options.preserveProtoFieldNames ? \"\(f.field.name)\" : \"\(f.field.jsonName)\")"
    }

    private func jsonNames(_ f: FieldModel) -> String {
        f.field.jsonName == f.field.name ? "\"\(f.field.name)\"" : "\"\(f.field.jsonName)\", \"\(f.field.name)\""
    }

    private func encodeJSON(_ f: FieldModel, _ w: inout CodeWriter) {
        let value = "self.\(f.property)"
        if let map = f.mapEntry {
            w.block("if !\(value).isEmpty") { w in
                w.line(jsonKey(f))
                w.line("w.beginObject()")
                w.block("for (k, v) in \(value).sorted(by: { $0.key._protoOrdersBefore($1.key) })") { w in
                    w.line("w.key(k._protoJSONKey)")
                    w.line(map.value.jsonWrite("v"))
                }
                w.line("w.endObject()")
            }
            return
        }
        if f.field.isRepeated {
            w.block("if !\(value).isEmpty") { w in
                w.line(jsonKey(f))
                w.line("w.beginArray()")
                w.line("for v in \(value) { \(f.jsonWrite("v")) }")
                w.line("w.endArray()")
            }
        } else if f.isOptionalProperty {
            w.block("if let v = \(value)") { w in
                w.line(jsonKey(f))
                w.line(f.jsonWrite("v"))
            }
        } else {
            w.block("if \(f.isNonDefault(value))") { w in
                w.line(jsonKey(f))
                w.line(f.jsonWrite(value))
            }
        }
    }

    private func decodeJSON(_ f: FieldModel, _ w: inout CodeWriter) {
        let target = "self.\(f.property)"
        w.line("case \(jsonNames(f)):")
        if let map = f.mapEntry {
            w.block("    \(target) = try v.protoMap(field: \"\(f.field.jsonName)\") { k, v in") { w in
                if map.value.field.kind == .enum {
                    w.line("guard let e = \(map.value.jsonRead("v")) else { return nil }")
                    w.line("return (\(map.key.jsonMapKey("k")), e)")
                } else {
                    w.line("(\(map.key.jsonMapKey("k")), \(map.value.jsonRead("v")))")
                }
            }
        } else if f.field.isRepeated {
            let read = f.jsonRead("$0")
            let transform = f.field.kind == .enum ? "compactMap" : "map"
            w.line("    \(target) = try v.protoArray(field: \"\(f.field.jsonName)\").\(transform) { \(read) }")
        } else if f.field.kind == .enum {
            w.line("    if !v.isNull, let e = \(f.jsonRead("v")) { \(target) = e }")
        } else {
            w.line("    if !v.isNull { \(target) = \(f.jsonRead("v")) }")
        }
    }
}

extension String {
    /// `m.pointee.name` → `m.pointee.n_name`: protoc-c's element count member.
    func replacingLast(_ insert: String) -> String {
        guard let dot = lastIndex(of: ".") else { return insert + self }
        let member = self[index(after: dot)...]
        let bare = member.hasPrefix("`") ? String(member.dropFirst().dropLast()) : String(member)
        return String(self[...dot]) + insert + bare
    }
}
