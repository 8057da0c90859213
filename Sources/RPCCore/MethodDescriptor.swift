/// The four shapes of an RPC.
public enum RPCKind: Sendable, Hashable {
    case unary
    case clientStreaming
    case serverStreaming
    case bidirectionalStreaming

    public var clientStreams: Bool { self == .clientStreaming || self == .bidirectionalStreaming }
    public var serverStreams: Bool { self == .serverStreaming || self == .bidirectionalStreaming }
}

/// A service by its fully qualified protobuf name, e.g. `grpc.health.v1.Health`.
public struct ServiceDescriptor: Sendable, Hashable, CustomStringConvertible {
    public let fullyQualifiedName: String

    public init(fullyQualifiedName: String) {
        self.fullyQualifiedName = fullyQualifiedName
    }

    public var description: String { fullyQualifiedName }
}

/// One method of a service; `path` is what travels in HTTP/2's `:path`.
public struct MethodDescriptor: Sendable, Hashable, CustomStringConvertible {
    public let service: ServiceDescriptor
    public let method: String
    public let kind: RPCKind
    /// `grpc.health.v1.Health/Check`, as used in logs and metrics: made once, since every RPC's log line and
    /// metrics lookup use it.
    public let description: String

    public init(service: ServiceDescriptor, method: String, kind: RPCKind) {
        self.service = service
        self.method = method
        self.kind = kind
        description = "\(service.fullyQualifiedName)/\(method)"
    }

    /// `/grpc.health.v1.Health/Check`.
    public var path: String { "/" + description }
}
