/// The parts of protoc's descriptors the generator needs, as plain Swift values.
///
/// They are read from a serialized `google.protobuf.FileDescriptorSet` (protoc `--descriptor_set_out`) that
/// protobuf-c decodes; see `DescriptorSet.swift`.
public struct FileDescriptor: Sendable {
    public var name: String
    public var package: String
    public var syntax: String
    public var dependencies: [String]
    public var swiftPrefix: String?
    public var messages: [MessageDescriptor]
    public var enums: [EnumDescriptor]
    public var services: [ServiceDescriptor]
    /// The file's `FileDescriptorProto`, serialized unchanged (for server reflection).
    public var serialized: [UInt8]
}

public struct MessageDescriptor: Sendable {
    public var name: String
    public var fullName: String
    public var fields: [FieldDescriptor]
    public var oneofs: [OneofDescriptor]
    public var messages: [MessageDescriptor]
    public var enums: [EnumDescriptor]
    public var isMapEntry: Bool
}

public struct OneofDescriptor: Sendable {
    public var name: String
    /// True for the oneof protoc synthesizes around a proto3 `optional` field.
    public var isSynthetic: Bool
}

public struct FieldDescriptor: Sendable {
    public enum Label: Sendable { case optional, required, repeated }
    public enum Kind: Int32, Sendable {
        case double = 1, float, int64, uint64, int32, fixed64, fixed32, bool, string, group, message, bytes
        case uint32, `enum`, sfixed32, sfixed64, sint32, sint64
    }
    public var name: String
    public var number: Int32
    public var label: Label
    public var kind: Kind
    /// Fully qualified with a leading dot, for message and enum fields.
    public var typeName: String?
    public var jsonName: String
    public var oneofIndex: Int?
    public var isProto3Optional: Bool
    /// The `packed` option when the file sets it (proto3 packs repeated scalars unless it is false).
    public var packed: Bool?
    public var isRepeated: Bool { label == .repeated }
}

public struct EnumDescriptor: Sendable {
    public var name: String
    public var fullName: String
    public var values: [(name: String, number: Int32)]
}

public struct ServiceDescriptor: Sendable {
    public var name: String
    public var fullName: String
    public var methods: [MethodDescriptor]
}

public struct MethodDescriptor: Sendable {
    public var name: String
    public var inputType: String
    public var outputType: String
    public var clientStreaming: Bool
    public var serverStreaming: Bool
}
