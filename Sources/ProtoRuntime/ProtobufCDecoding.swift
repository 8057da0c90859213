internal import CProtobufC
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Options for decoding binary messages.
public struct ProtoDecodingOptions: Sendable {
    /// The most memory protobuf-c may allocate for one decoded message, as a multiple of its encoded size
    /// plus a fixed allowance. Each empty repeated sub-message costs a whole C struct, so hostile input can
    /// otherwise expand a few hundred times.
    public var memoryLimitMultiple: Int = 64
    public var memoryLimitAllowance: Int = 1 << 16

    public init() {}

    public static var defaults: Self { .init() }

    func memoryLimit(forEncodedSize size: Int) -> Int {
        let (product, overflow) = size.multipliedReportingOverflow(by: memoryLimitMultiple)
        return overflow ? .max : product.addingReportingOverflow(memoryLimitAllowance).partialValue
    }
}

extension ProtoMessage {
    /// Decodes the protobuf binary encoding.
    public init(serializedBytes bytes: UnsafeRawBufferPointer, options: ProtoDecodingOptions = .defaults) throws {
        let arena = Arena(initialCapacity: bytes.count * 2 + 256, limit: options.memoryLimit(forEncodedSize: bytes.count))
        var allocator = arena.allocator
        let descriptor = Self._protobufCDescriptor.assumingMemoryBound(to: ProtobufCMessageDescriptor.self)
        // protobuf-c reads nothing when the length is 0, but wants a pointer.
        let unpacked = withUnsafePointer(to: 0 as UInt8) { empty in
            protobuf_c_message_unpack(
                descriptor, &allocator, bytes.count,
                bytes.baseAddress?.assumingMemoryBound(to: UInt8.self) ?? empty
            )
        }
        guard let unpacked else {
            let reason: ProtoDecodingError.Reason = arena.state.pointee.exceeded ? .memoryLimitExceeded : .malformed
            throw ProtoDecodingError(messageName: Self.protoMessageName, reason: reason)
        }
        self = try withExtendedLifetime(arena) { try Self(_protobufC: UnsafeRawPointer(unpacked)) }
    }

    /// Decodes the protobuf binary encoding.
    public init(serializedBytes bytes: some Sequence<UInt8>, options: ProtoDecodingOptions = .defaults) throws {
        let decoded = try bytes.withContiguousStorageIfAvailable {
            try Self(serializedBytes: UnsafeRawBufferPointer($0), options: options)
        }
        if let decoded {
            self = decoded
        } else {
            self = try Array(bytes).withUnsafeBytes { try Self(serializedBytes: $0, options: options) }
        }
    }
}

/// Reading values out of unpacked protobuf-c messages; called by generated code only.
public enum ProtobufCDecoding {
    /// A `string` field. The length comes from the arena header, so an embedded NUL survives; this is sound
    /// because every unpack goes through ``Arena`` and the only other pointer protobuf-c leaves in a proto3
    /// string field is its shared empty string.
    public static func string(_ pointer: UnsafePointer<CChar>?, field: StaticString, in message: String) throws -> String {
        guard let pointer, pointer != CProtobufC_empty_string() else { return "" }
        let count = Arena.allocationSize(UnsafeRawPointer(pointer)) - 1
        let bytes = UnsafeRawBufferPointer(start: pointer, count: count)
        guard let value = String(validating: bytes.assumingMemoryBound(to: UInt8.self), as: UTF8.self) else {
            throw ProtoDecodingError(messageName: message, reason: .invalidUTF8(field: "\(field)"))
        }
        return value
    }

    /// A `bytes` field.
    public static func bytes(_ count: Int, _ data: UnsafePointer<UInt8>?) -> [UInt8] {
        guard count > 0, let data else { return [] }
        return Array(UnsafeBufferPointer(start: data, count: count))
    }

    /// A repeated field whose C and Swift element types are the same.
    public static func array<T>(_ count: Int, _ base: UnsafePointer<T>?) -> [T] {
        guard count > 0, let base else { return [] }
        return Array(UnsafeBufferPointer(start: base, count: count))
    }

    /// A repeated field whose elements need converting.
    public static func array<C, T>(_ count: Int, _ base: UnsafePointer<C>?, _ transform: (C) throws -> T) rethrows -> [T] {
        guard count > 0, let base else { return [] }
        var result = [T]()
        result.reserveCapacity(count)
        for i in 0..<count { result.append(try transform(base[i])) }
        return result
    }

    /// The unknown fields protobuf-c kept for the message at `message`.
    public static func unknownFields(of message: UnsafeRawPointer) -> UnknownFields {
        let base = message.assumingMemoryBound(to: ProtobufCMessage.self).pointee
        guard base.n_unknown_fields > 0, let fields = base.unknown_fields else { return UnknownFields() }
        return UnknownFields((0..<Int(base.n_unknown_fields)).map { i in
            let f = fields[i]
            return UnknownFields.Field(
                number: f.tag,
                wireType: UInt8(truncatingIfNeeded: f.wire_type.rawValue),
                value: bytes(f.len, f.data)
            )
        })
    }
}
