/// A `.proto` file compiled into a generated module, as server reflection needs it.
public struct ProtoFileDescriptor: Sendable {
    /// The import path, e.g. `grpc/health/v1/health.proto`.
    public let name: String
    public let package: String
    public let dependencies: [String]
    /// Fully qualified names of the messages, enums, services and methods it declares.
    public let symbols: [String]
    /// The serialized `google.protobuf.FileDescriptorProto`, as protoc produced it.
    public let serialized: [UInt8]

    /// For generated code: the descriptor is embedded as base64 text, which compiles much faster than an
    /// array literal.
    public init(name: String, package: String, dependencies: [String], symbols: [String], serializedBase64: String) {
        self.name = name
        self.package = package
        self.dependencies = dependencies
        self.symbols = symbols
        serialized = Self.decodeBase64(serializedBase64)
    }

    /// For generated code: decodes an embedded descriptor.
    public static func decodeBase64(_ text: String) -> [UInt8] {
        guard let bytes = try? Base64.decode(text) else {
            preconditionFailure("a generated descriptor is not valid base64")
        }
        return bytes
    }
}
