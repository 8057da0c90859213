internal import CProtobufC
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Where encoded bytes go: a `[UInt8]`, or a NIO `ByteBuffer` (which has the same method).
public protocol ProtoOutputBuffer {
    mutating func writeWithUnsafeMutableBytes(
        minimumWritableBytes: Int,
        _ body: (UnsafeMutableRawBufferPointer) throws -> Int
    ) rethrows -> Int
}

extension Array: ProtoOutputBuffer where Element == UInt8 {
    @discardableResult
    public mutating func writeWithUnsafeMutableBytes(
        minimumWritableBytes: Int,
        _ body: (UnsafeMutableRawBufferPointer) throws -> Int
    ) rethrows -> Int {
        let start = count
        append(contentsOf: repeatElement(0, count: minimumWritableBytes))
        let written = try withUnsafeMutableBytes { try body(UnsafeMutableRawBufferPointer(rebasing: $0[start...])) }
        removeLast(minimumWritableBytes - written)
        return written
    }
}

extension ProtoMessage {
    /// The protobuf binary encoding. Map entries are written in key order, so equal messages encode equally.
    public func serializedBytes() throws -> [UInt8] {
        try withProtobufC { message in
            let size = protobuf_c_message_get_packed_size(message)
            return [UInt8](unsafeUninitializedCapacity: size) { buffer, count in
                count = protobuf_c_message_pack(message, buffer.baseAddress)
            }
        }
    }

    /// Appends the binary encoding to `buffer` and returns its length.
    @discardableResult
    public func serialize(into buffer: inout some ProtoOutputBuffer) throws -> Int {
        try withProtobufC { message in
            let size = protobuf_c_message_get_packed_size(message)
            return buffer.writeWithUnsafeMutableBytes(minimumWritableBytes: size) { out in
                protobuf_c_message_pack(message, out.baseAddress!.assumingMemoryBound(to: UInt8.self))
            }
        }
    }

    /// The length of the binary encoding.
    public func serializedSize() throws -> Int {
        try withProtobufC { protobuf_c_message_get_packed_size($0) }
    }

    private func withProtobufC<R>(_ body: (UnsafePointer<ProtobufCMessage>) throws -> R) throws -> R {
        let arena = Arena(initialCapacity: 1024, limit: .max)
        return try withExtendedLifetime(arena) {
            let message = try _protobufC(ProtobufCEncoder(arena: arena))
            return try body(message.assumingMemoryBound(to: ProtobufCMessage.self))
        }
    }
}

/// Builds protobuf-c structs in an arena; called by generated code only, and valid only during the encode
/// that created it.
public struct ProtobufCEncoder {
    private let arena: UnsafeMutablePointer<Arena.State>

    init(arena: borrowing Arena) {
        self.arena = arena.state
    }

    /// Uninitialized memory for one C struct; generated code calls the struct's protobuf-c `init` on it.
    public func allocate<T>(_ type: T.Type) -> UnsafeMutablePointer<T> {
        allocateArray(type, count: 1)!
    }

    public func allocateArray<T>(_ type: T.Type, count: Int) -> UnsafeMutablePointer<T>? {
        guard count > 0 else { return nil }
        let (size, overflow) = MemoryLayout<T>.stride.multipliedReportingOverflow(by: count)
        precondition(!overflow, "array too large to encode")
        guard let raw = Arena.allocate(size, in: arena) else { fatalError("out of memory while encoding") }
        return raw.bindMemory(to: T.self, capacity: count)
    }

    /// A NUL-terminated copy. protobuf-c measures strings with `strlen`, so a string containing U+0000 cannot
    /// be encoded faithfully and is refused rather than truncated. An empty string gets its own copy too:
    /// protobuf-c skips a oneof string that points at the shared default.
    public func string(_ value: String, field: StaticString, in message: String) throws -> UnsafeMutablePointer<CChar> {
        var value = value
        return try value.withUTF8 { utf8 in
            guard utf8.isEmpty || memchr(utf8.baseAddress!, 0, utf8.count) == nil else {
                throw ProtoEncodingError("\(message).\(field) contains U+0000, which protobuf-c cannot encode")
            }
            let out = allocateArray(CChar.self, count: utf8.count + 1)!
            if !utf8.isEmpty { UnsafeMutableRawPointer(out).copyMemory(from: utf8.baseAddress!, byteCount: utf8.count) }
            out[utf8.count] = 0
            return out
        }
    }

    /// A copy of a `bytes` value (never nil, so protobuf-c can write an empty value inside a oneof).
    public func bytes(_ value: [UInt8]) -> UnsafeMutablePointer<UInt8> {
        let out = allocateArray(UInt8.self, count: max(value.count, 1))!
        if !value.isEmpty {
            value.withUnsafeBufferPointer { out.initialize(from: $0.baseAddress!, count: $0.count) }
        }
        return out
    }

    /// A repeated field whose C and Swift element types are the same.
    public func array<T>(_ values: [T]) -> UnsafeMutablePointer<T>? {
        guard let out = allocateArray(T.self, count: values.count) else { return nil }
        values.withUnsafeBufferPointer { out.initialize(from: $0.baseAddress!, count: $0.count) }
        return out
    }

    /// A repeated field whose elements need converting.
    public func array<T, C>(_ values: [T], _ type: C.Type, _ transform: (T) throws -> C) rethrows -> UnsafeMutablePointer<C>? {
        guard let out = allocateArray(C.self, count: values.count) else { return nil }
        for (i, v) in values.enumerated() { (out + i).initialize(to: try transform(v)) }
        return out
    }

    /// Attaches unknown fields to the C message at `message`, so protobuf-c writes them after the known ones.
    public func setUnknownFields(_ unknown: UnknownFields, on message: UnsafeMutableRawPointer) {
        guard !unknown.isEmpty else { return }
        let out = allocateArray(ProtobufCMessageUnknownField.self, count: unknown.fields.count)!
        for (i, f) in unknown.fields.enumerated() {
            (out + i).initialize(to: ProtobufCMessageUnknownField(
                tag: f.number,
                wire_type: ProtobufCWireType(rawValue: .init(f.wireType)),
                len: f.value.count,
                data: bytes(f.value)
            ))
        }
        let base = message.assumingMemoryBound(to: ProtobufCMessage.self)
        base.pointee.n_unknown_fields = UInt32(unknown.fields.count)
        base.pointee.unknown_fields = out
    }
}
