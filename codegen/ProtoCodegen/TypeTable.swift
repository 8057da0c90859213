/// What the generator knows about every message and enum in the descriptor set, by fully qualified name
/// (with the leading dot protoc uses in `type_name`).
struct TypeTable {
    struct Entry {
        enum Kind { case message(MessageDescriptor), enumeration(EnumDescriptor) }
        var kind: Kind
        /// Qualified Swift name, e.g. `Gateway_User_V1_User.Status`.
        var swiftName: String
        /// protoc-c's struct or enum type name.
        var cTypeName: String
        /// protoc-c's function prefix (`<prefix>__init`).
        var cFunctionPrefix: String
        /// The Swift module the type is generated into, or nil when no module includes its file.
        var module: String?
        var file: String
    }

    private(set) var entries: [String: Entry] = [:]
    let moduleOfFile: [String: String]

    init(files: [FileDescriptor], moduleOfFile: [String: String]) {
        self.moduleOfFile = moduleOfFile
        for file in files {
            let prefix = SwiftNaming.typePrefix(package: file.package, swiftPrefix: file.swiftPrefix)
            let module = moduleOfFile[file.name]
            for m in file.messages { add(m, swiftName: prefix + m.name, module: module, file: file.name) }
            for e in file.enums { add(e, swiftName: prefix + e.name, module: module, file: file.name) }
        }
    }

    private mutating func add(_ message: MessageDescriptor, swiftName: String, module: String?, file: String) {
        entries["." + message.fullName] = Entry(
            kind: .message(message), swiftName: swiftName,
            cTypeName: CNaming.typeName(message.fullName), cFunctionPrefix: CNaming.functionPrefix(message.fullName),
            module: module, file: file
        )
        for m in message.messages {
            add(m, swiftName: swiftName + "." + SwiftNaming.nestedTypeName(m.name, suffix: "Message"), module: module, file: file)
        }
        for e in message.enums {
            add(e, swiftName: swiftName + "." + SwiftNaming.nestedTypeName(e.name, suffix: "Enum"), module: module, file: file)
        }
    }

    private mutating func add(_ e: EnumDescriptor, swiftName: String, module: String?, file: String) {
        entries["." + e.fullName] = Entry(
            kind: .enumeration(e), swiftName: swiftName,
            cTypeName: CNaming.typeName(e.fullName), cFunctionPrefix: CNaming.functionPrefix(e.fullName),
            module: module, file: file
        )
    }

    func entry(_ typeName: String?) throws -> Entry {
        guard let typeName, let entry = entries[typeName] else {
            throw CodegenError("unknown type \(typeName ?? "<none>")")
        }
        return entry
    }

    func mapEntry(of field: FieldDescriptor) -> MessageDescriptor? {
        guard field.isRepeated, field.kind == .message, let e = entries[field.typeName ?? ""],
              case .message(let m) = e.kind, m.isMapEntry else { return nil }
        return m
    }

    /// Message types that contain themselves. protobuf-c recurses without a depth limit, so such a schema
    /// would let hostile input exhaust the stack; the generator refuses it.
    func recursiveMessage(in files: [FileDescriptor]) -> [String]? {
        var state: [String: Bool] = [:]  // false = on the current path, true = done
        var path: [String] = []
        func visit(_ name: String) -> [String]? {
            if let done = state[name] { return done ? nil : path + [name] }
            guard let e = entries[name], case .message(let m) = e.kind else { return nil }
            state[name] = false
            path.append(name)
            for f in m.fields where f.kind == .message {
                if let cycle = visit(f.typeName ?? "") { return cycle }
            }
            path.removeLast()
            state[name] = true
            return nil
        }
        for name in entries.keys.sorted() {
            if let cycle = visit(name) { return cycle }
        }
        return nil
    }
}

/// How a field is stored in the C struct protoc-c generates from the lowered descriptors
/// (``DescriptorSet/loweredForProtobufC()``).
enum CLayout {
    enum Storage: Equatable {
        /// A plain member; protobuf-c skips it when zero.
        case implicit
        /// A message pointer; NULL when absent.
        case pointer
        /// `n_<name>` and `<name>`.
        case repeated
        /// Present when `<caseField> == number`.
        case oneof(caseField: String)
    }

    /// The name of the one-field oneof the lowering adds to give a field explicit presence.
    static func presenceOneofName(field: String) -> String {
        "_" + field
    }

    static func storage(of field: FieldDescriptor, in message: MessageDescriptor, proto3: Bool) -> Storage {
        if field.isRepeated { return .repeated }
        if message.isMapEntry {
            return .oneof(caseField: CNaming.oneofCaseField(presenceOneofName(field: field.name)))
        }
        if let index = field.oneofIndex {
            return .oneof(caseField: CNaming.oneofCaseField(message.oneofs[index].name))
        }
        if field.kind == .message { return .pointer }
        if proto3 && (field.kind == .float || field.kind == .double) {
            return .oneof(caseField: CNaming.oneofCaseField(presenceOneofName(field: field.name)))
        }
        return .implicit
    }
}
