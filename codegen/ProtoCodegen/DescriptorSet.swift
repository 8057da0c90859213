internal import CDescriptorProtos
internal import CProtobufC
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A `FileDescriptorSet` decoded by protobuf-c.
///
/// The generator trusts this input (it comes from protoc on the developer's machine), but still reports
/// malformed files as errors rather than crashing.
public final class DescriptorSet {
    private let set: UnsafeMutablePointer<Google__Protobuf__FileDescriptorSet>
    public let files: [FileDescriptor]

    public init(serialized bytes: [UInt8]) throws {
        let unpacked = bytes.withUnsafeBufferPointer {
            google__protobuf__file_descriptor_set__unpack(nil, $0.count, $0.baseAddress)
        }
        guard let unpacked else { throw CodegenError("not a serialized google.protobuf.FileDescriptorSet") }
        set = unpacked
        files = try (0..<unpacked.pointee.n_file).map { try FileDescriptor(unpacked.pointee.file[$0]!) }
    }

    deinit {
        google__protobuf__file_descriptor_set__free_unpacked(set, nil)
    }

    public func file(named name: String) -> FileDescriptor? {
        files.first { $0.name == name }
    }

    /// A serialized `FileDescriptorSet` of `names` and everything they import, dependencies first (as
    /// `protoc --include_imports` writes it), unchanged from protoc's output.
    public func serializedSet(of names: [String]) throws -> [UInt8] {
        var ordered: [String] = []
        func visit(_ name: String) throws {
            guard !ordered.contains(name) else { return }
            guard let file = file(named: name) else { throw CodegenError("\(name) is not in the descriptor set") }
            for dependency in file.dependencies { try visit(dependency) }
            ordered.append(name)
        }
        for name in names { try visit(name) }
        let all = (0..<set.pointee.n_file).map { set.pointee.file[$0]! }
        let chosen = ordered.map { name in all.first { String(cString: $0.pointee.name) == name }! }
        var subset = Google__Protobuf__FileDescriptorSet()
        google__protobuf__file_descriptor_set__init(&subset)
        return chosen.withUnsafeBufferPointer { files in
            subset.n_file = files.count
            subset.file = UnsafeMutablePointer(mutating: files.baseAddress!.withMemoryRebound(
                to: UnsafeMutablePointer<Google__Protobuf__FileDescriptorProto>?.self, capacity: files.count) { $0 })
            let size = google__protobuf__file_descriptor_set__get_packed_size(&subset)
            return [UInt8](unsafeUninitializedCapacity: size) { buffer, count in
                count = google__protobuf__file_descriptor_set__pack(&subset, buffer.baseAddress)
            }
        }
    }

    /// The same set reshaped so that protoc-c 1.4.1 generates C that encodes exactly like upb and C++ protobuf.
    ///
    /// Three things differ otherwise, each fixed by giving the field explicit presence through a one-field
    /// oneof (which changes the C struct, never the wire format):
    /// - proto3 `optional` fields: protoc-c refuses them, so their synthetic oneof becomes a real one;
    /// - map entries: protoc-c omits a default key or value, upb and C++ always write both;
    /// - singular `float`/`double` fields: protoc-c drops `-0.0` because it compares with `0`, upb compares
    ///   bits. The Swift side sets the oneof case exactly when the bit pattern is non-zero.
    /// The Swift generator mirrors these rules in `CLayout`.
    public func loweredForProtobufC() throws -> [UInt8] {
        var allocations = OneofAllocations()
        defer { allocations.release() }
        for f in 0..<set.pointee.n_file {
            let file = set.pointee.file[f]!
            let proto3 = file.pointee.syntax.map { String(cString: $0) } == "proto3"
            for m in 0..<file.pointee.n_message_type {
                lower(file.pointee.message_type[m]!, proto3: proto3, &allocations)
            }
        }
        let size = google__protobuf__file_descriptor_set__get_packed_size(set)
        let out = [UInt8](unsafeUninitializedCapacity: size) { buffer, count in
            count = google__protobuf__file_descriptor_set__pack(set, buffer.baseAddress)
        }
        allocations.restore()
        return out
    }

    private func lower(
        _ message: UnsafeMutablePointer<Google__Protobuf__DescriptorProto>,
        proto3: Bool,
        _ allocations: inout OneofAllocations
    ) {
        for n in 0..<message.pointee.n_nested_type {
            lower(message.pointee.nested_type[n]!, proto3: proto3, &allocations)
        }
        let isMapEntry = message.pointee.options.map { $0.pointee.map_entry != 0 } ?? false
        if isMapEntry {
            allocations.clearMapEntry(message.pointee.options!)
        }
        for i in 0..<message.pointee.n_field {
            let field = message.pointee.field[i]!
            if field.pointee.proto3_optional != 0 {
                allocations.clearProto3Optional(field)
                continue
            }
            guard field.pointee.has_oneof_index == 0,
                  field.pointee.label != GOOGLE__PROTOBUF__FIELD_DESCRIPTOR_PROTO__LABEL__LABEL_REPEATED
            else { continue }
            let kind = field.pointee.type
            let isFloatingPoint = kind == GOOGLE__PROTOBUF__FIELD_DESCRIPTOR_PROTO__TYPE__TYPE_FLOAT
                || kind == GOOGLE__PROTOBUF__FIELD_DESCRIPTOR_PROTO__TYPE__TYPE_DOUBLE
            if isMapEntry || (proto3 && isFloatingPoint) {
                allocations.addOneof(named: CLayout.presenceOneofName(field: String(cString: field.pointee.name)),
                                     for: field, in: message)
            }
        }
    }
}

/// Memory the lowering adds to protobuf-c's unpacked tree, and the edits to undo before it is freed.
private struct OneofAllocations {
    private var undo: [() -> Void] = []
    private var frees: [UnsafeMutableRawPointer] = []

    mutating func clearMapEntry(_ options: UnsafeMutablePointer<Google__Protobuf__MessageOptions>) {
        let (had, value) = (options.pointee.has_map_entry, options.pointee.map_entry)
        options.pointee.has_map_entry = 0
        options.pointee.map_entry = 0
        undo.append { options.pointee.has_map_entry = had; options.pointee.map_entry = value }
    }

    mutating func clearProto3Optional(_ field: UnsafeMutablePointer<Google__Protobuf__FieldDescriptorProto>) {
        field.pointee.has_proto3_optional = 0
        field.pointee.proto3_optional = 0
        undo.append { field.pointee.has_proto3_optional = 1; field.pointee.proto3_optional = 1 }
    }

    mutating func addOneof(
        named name: String,
        for field: UnsafeMutablePointer<Google__Protobuf__FieldDescriptorProto>,
        in message: UnsafeMutablePointer<Google__Protobuf__DescriptorProto>
    ) {
        let oldCount = message.pointee.n_oneof_decl
        let oldArray = message.pointee.oneof_decl
        let array = UnsafeMutablePointer<UnsafeMutablePointer<Google__Protobuf__OneofDescriptorProto>?>
            .allocate(capacity: oldCount + 1)
        for i in 0..<oldCount { array[i] = oldArray![i] }
        let decl = UnsafeMutablePointer<Google__Protobuf__OneofDescriptorProto>.allocate(capacity: 1)
        google__protobuf__oneof_descriptor_proto__init(decl)
        decl.pointee.name = strdup(name)
        array[oldCount] = decl
        message.pointee.oneof_decl = array
        message.pointee.n_oneof_decl = oldCount + 1
        field.pointee.has_oneof_index = 1
        field.pointee.oneof_index = Int32(oldCount)
        frees += [UnsafeMutableRawPointer(array), UnsafeMutableRawPointer(decl), UnsafeMutableRawPointer(decl.pointee.name)]
        undo.append {
            message.pointee.oneof_decl = oldArray
            message.pointee.n_oneof_decl = oldCount
            field.pointee.has_oneof_index = 0
            field.pointee.oneof_index = 0
        }
    }

    /// Puts protobuf-c's tree back as it was, so `free_unpacked` frees only what protobuf-c allocated.
    mutating func restore() {
        for step in undo.reversed() { step() }
        undo = []
    }

    mutating func release() {
        restore()
        for p in frees { free(p) }
        frees = []
    }
}

extension FileDescriptor {
    /// One serialized `google.protobuf.FileDescriptorProto`, as server reflection returns them. Malformed
    /// input is an error.
    public init(serialized bytes: [UInt8]) throws {
        let unpacked = bytes.withUnsafeBufferPointer {
            google__protobuf__file_descriptor_proto__unpack(nil, $0.count, $0.baseAddress)
        }
        guard let unpacked else { throw CodegenError("not a serialized google.protobuf.FileDescriptorProto") }
        defer { google__protobuf__file_descriptor_proto__free_unpacked(unpacked, nil) }
        try self.init(unpacked)
    }

    fileprivate init(_ file: UnsafeMutablePointer<Google__Protobuf__FileDescriptorProto>) throws {
        let p = file.pointee
        name = string(p.name)
        package = string(p.package)
        syntax = p.syntax.map { String(cString: $0) } ?? "proto2"
        dependencies = (0..<p.n_dependency).map { string(p.dependency[$0]) }
        swiftPrefix = p.options?.pointee.swift_prefix.map { String(cString: $0) }
        let scope = package.isEmpty ? "" : package + "."
        messages = try (0..<p.n_message_type).map { try MessageDescriptor(p.message_type[$0]!, scope: scope) }
        enums = (0..<p.n_enum_type).map { EnumDescriptor(p.enum_type[$0]!, scope: scope) }
        services = try (0..<p.n_service).map { try ServiceDescriptor(p.service[$0]!, scope: scope) }
        let size = google__protobuf__file_descriptor_proto__get_packed_size(file)
        serialized = [UInt8](unsafeUninitializedCapacity: size) { buffer, count in
            count = google__protobuf__file_descriptor_proto__pack(file, buffer.baseAddress)
        }
    }
}

extension MessageDescriptor {
    fileprivate init(_ message: UnsafeMutablePointer<Google__Protobuf__DescriptorProto>, scope: String) throws {
        let p = message.pointee
        let name = string(p.name)
        let fullName = scope + name
        let fields = try (0..<p.n_field).map { try FieldDescriptor(p.field[$0]!, in: fullName) }
        self.name = name
        self.fullName = fullName
        self.fields = fields
        isMapEntry = p.options.map { $0.pointee.map_entry != 0 } ?? false
        oneofs = (0..<p.n_oneof_decl).map { i in
            let synthetic = fields.contains { $0.oneofIndex == i && $0.isProto3Optional }
            return OneofDescriptor(name: string(p.oneof_decl[i]!.pointee.name), isSynthetic: synthetic)
        }
        messages = try (0..<p.n_nested_type).map { try MessageDescriptor(p.nested_type[$0]!, scope: fullName + ".") }
        enums = (0..<p.n_enum_type).map { EnumDescriptor(p.enum_type[$0]!, scope: fullName + ".") }
    }
}

extension FieldDescriptor {
    fileprivate init(_ field: UnsafeMutablePointer<Google__Protobuf__FieldDescriptorProto>, in message: String) throws {
        let p = field.pointee
        name = string(p.name)
        number = p.number
        switch p.label {
        case GOOGLE__PROTOBUF__FIELD_DESCRIPTOR_PROTO__LABEL__LABEL_REQUIRED: label = .required
        case GOOGLE__PROTOBUF__FIELD_DESCRIPTOR_PROTO__LABEL__LABEL_REPEATED: label = .repeated
        default: label = .optional
        }
        guard let kind = Kind(rawValue: Int32(truncatingIfNeeded: p.type.rawValue)) else {
            throw CodegenError("\(message).\(name): unknown field type \(p.type.rawValue)")
        }
        self.kind = kind
        typeName = p.type_name.map { String(cString: $0) }
        // protoc fills json_name in; descriptors from elsewhere (server reflection) may lack it.
        jsonName = p.json_name.map { String(cString: $0) } ?? Self.jsonName(of: name)
        oneofIndex = p.has_oneof_index != 0 ? Int(p.oneof_index) : nil
        isProto3Optional = p.proto3_optional != 0
        packed = p.options.flatMap { $0.pointee.has_packed != 0 ? $0.pointee.packed != 0 : nil }
    }
}

extension FieldDescriptor {
    /// protoc's default JSON name: underscores dropped, the letter after each one upper-cased.
    static func jsonName(of name: String) -> String {
        var out = ""
        var upper = false
        for character in name {
            if character == "_" {
                upper = true
            } else {
                out += upper ? character.uppercased() : String(character)
                upper = false
            }
        }
        return out
    }
}

extension EnumDescriptor {
    fileprivate init(_ e: UnsafeMutablePointer<Google__Protobuf__EnumDescriptorProto>, scope: String) {
        let p = e.pointee
        name = string(p.name)
        fullName = scope + name
        values = (0..<p.n_value).map { (string(p.value[$0]!.pointee.name), p.value[$0]!.pointee.number) }
    }
}

extension ServiceDescriptor {
    fileprivate init(_ s: UnsafeMutablePointer<Google__Protobuf__ServiceDescriptorProto>, scope: String) throws {
        let p = s.pointee
        name = string(p.name)
        fullName = scope + name
        methods = (0..<p.n_method).map { i in
            let m = p.method[i]!.pointee
            return MethodDescriptor(
                name: string(m.name),
                inputType: string(m.input_type),
                outputType: string(m.output_type),
                clientStreaming: m.client_streaming != 0,
                serverStreaming: m.server_streaming != 0
            )
        }
    }
}

private func string(_ p: UnsafeMutablePointer<CChar>?) -> String {
    p.map { String(cString: $0) } ?? ""
}

public struct CodegenError: Error, CustomStringConvertible {
    public var description: String
    public init(_ description: String) { self.description = description }
}
