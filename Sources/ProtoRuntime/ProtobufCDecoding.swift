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
    @inlinable
    public init(serializedBytes bytes: UnsafeRawBufferPointer, options: ProtoDecodingOptions = .defaults) throws {
        self.init()
        try ProtobufCDecoding.unpack(Self._protobufCDescriptor, bytes, options: options, messageName: Self.protoMessageName) {
            self = try Self(_protobufC: $0)
        }
    }

    /// Decodes the protobuf binary encoding. `@inlinable` for the same reason as `serializedBytes()`.
    @inlinable
    public init(serializedBytes bytes: some Sequence<UInt8>, options: ProtoDecodingOptions = .defaults) throws {
        self.init()
        let decodedInPlace: Void? = try bytes.withContiguousStorageIfAvailable { buffer in
            try ProtobufCDecoding.unpack(
                Self._protobufCDescriptor, UnsafeRawBufferPointer(buffer), options: options,
                messageName: Self.protoMessageName
            ) { self = try Self(_protobufC: $0) }
        }
        if decodedInPlace == nil {
            self = try Array(bytes).withUnsafeBytes { try Self(serializedBytes: $0, options: options) }
        }
    }
}

/// Reading values out of unpacked protobuf-c messages; called by generated code only.
public enum ProtobufCDecoding {
    /// Unpacks `bytes` with protobuf-c into an arena and hands the C message to `convert`, which copies it out.
    /// Not generic, so it is compiled once for all message types instead of run through metadata per call.
    @usableFromInline
    static func unpack(
        _ descriptor: UnsafeRawPointer,
        _ bytes: UnsafeRawBufferPointer,
        options: ProtoDecodingOptions,
        messageName: @autoclosure () -> String,
        _ convert: (UnsafeRawPointer) throws -> Void
    ) throws {
        let limit = options.memoryLimit(forEncodedSize: bytes.count)
        try Arena.withArena(initialCapacity: bytes.count * 2 + 256, limit: limit) { arena in
            var allocator = arena.allocator
            // protobuf-c reads nothing when the length is 0, but wants a pointer.
            let unpacked = withUnsafePointer(to: 0 as UInt8) { empty in
                protobuf_c_message_unpack(
                    descriptor.assumingMemoryBound(to: ProtobufCMessageDescriptor.self), &allocator, bytes.count,
                    bytes.baseAddress?.assumingMemoryBound(to: UInt8.self) ?? empty
                )
            }
            guard let unpacked else {
                let reason: ProtoDecodingError.Reason = arena.exceeded ? .memoryLimitExceeded : .malformed
                throw ProtoDecodingError(messageName: messageName(), reason: reason)
            }
            try convert(UnsafeRawPointer(unpacked))
        }
    }

    /// A `string` field. The length comes from the arena header, so an embedded NUL survives; this is sound
    /// because every unpack goes through ``Arena`` and the only other pointer protobuf-c leaves in a proto3
    /// string field is its shared empty string.
    public static func string(_ pointer: UnsafePointer<CChar>?, field: StaticString, in message: String) throws -> String {
        guard let pointer, pointer != CProtobufC_empty_string() else { return "" }
        let count = Arena.allocationSize(UnsafeRawPointer(pointer)) - 1
        let bytes = UnsafeBufferPointer(start: UnsafeRawPointer(pointer).assumingMemoryBound(to: UInt8.self), count: count)
        // ASCII, the common case, is valid UTF-8 as it is; `String(validating:as:)` is generic across the
        // module boundary and so costs a metadata lookup, which only other strings pay.
        if isASCII(bytes) {
            return String(decoding: bytes, as: UTF8.self)
        }
        guard let value = String(validating: bytes, as: UTF8.self) else {
            throw ProtoDecodingError(messageName: message, reason: .invalidUTF8(field: "\(field)"))
        }
        return value
    }

    private static func isASCII(_ bytes: UnsafeBufferPointer<UInt8>) -> Bool {
        let raw = UnsafeRawBufferPointer(bytes)
        var i = 0
        while i + 8 <= raw.count {
            if raw.loadUnaligned(fromByteOffset: i, as: UInt64.self) & 0x8080_8080_8080_8080 != 0 { return false }
            i += 8
        }
        while i < raw.count {
            if raw[i] & 0x80 != 0 { return false }
            i += 1
        }
        return true
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

    /// The unknown fields protobuf-c kept for the message at `message`. protobuf-c accepts field number 0
    /// when its tag is spelled with a redundant byte (`80 00`), which no encoder can write back; such input is
    /// malformed, as upb says too.
    public static func unknownFields(of message: UnsafeRawPointer, in messageName: String) throws -> UnknownFields {
        let base = message.assumingMemoryBound(to: ProtobufCMessage.self).pointee
        guard base.n_unknown_fields > 0, let fields = base.unknown_fields else { return UnknownFields() }
        return UnknownFields(try (0..<Int(base.n_unknown_fields)).map { i in
            let f = fields[i]
            guard f.tag != 0 else { throw ProtoDecodingError(messageName: messageName, reason: .malformed) }
            return UnknownFields.Field(
                number: f.tag,
                wireType: UInt8(truncatingIfNeeded: f.wire_type.rawValue),
                value: bytes(f.len, f.data)
            )
        })
    }
}
