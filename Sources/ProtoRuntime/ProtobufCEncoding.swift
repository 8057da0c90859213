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
    /// `@inlinable`, and so specialized where it is called: run generically (as from the RPC router), it looked
    /// up type metadata at run time on every message.
    @inlinable
    public func serializedBytes() throws -> [UInt8] {
        try ProtobufCEncoding.bytes { try self._protobufC($0) }
    }

    /// Appends the binary encoding to `buffer` and returns its length.
    @discardableResult
    public func serialize(into buffer: inout some ProtoOutputBuffer) throws -> Int {
        var written = 0
        try ProtobufCEncoding.pack({ try self._protobufC($0) }) { message in
            let size = protobuf_c_message_get_packed_size(message)
            written = buffer.writeWithUnsafeMutableBytes(minimumWritableBytes: size) { out in
                protobuf_c_message_pack(message, out.baseAddress!.assumingMemoryBound(to: UInt8.self))
            }
        }
        return written
    }

    /// The length of the binary encoding.
    public func serializedSize() throws -> Int {
        var size = 0
        try ProtobufCEncoding.pack({ try self._protobufC($0) }) { size = protobuf_c_message_get_packed_size($0) }
        return size
    }
}

@usableFromInline
enum ProtobufCEncoding {
    /// The encoding of the message `build` makes (the generated `_protobufC`).
    @usableFromInline
    static func bytes(_ build: (ProtobufCEncoder) throws -> UnsafeMutableRawPointer) throws -> [UInt8] {
        var bytes: [UInt8] = []
        try pack(build) { message in
            let size = protobuf_c_message_get_packed_size(message)
            bytes = [UInt8](unsafeUninitializedCapacity: size) { buffer, count in
                count = protobuf_c_message_pack(message, buffer.baseAddress)
            }
        }
        return bytes
    }

    /// Builds the C message in an arena (`build` is the generated `_protobufC`) and hands it to `use`.
    /// Not generic, so it is compiled once for all message types instead of run through metadata per call.
    static func pack(
        _ build: (ProtobufCEncoder) throws -> UnsafeMutableRawPointer,
        _ use: (UnsafePointer<ProtobufCMessage>) -> Void
    ) throws {
        try Arena.withArena(initialCapacity: 4096, limit: .max) { arena in
            let message = try build(ProtobufCEncoder(arena: arena))
            use(message.assumingMemoryBound(to: ProtobufCMessage.self))
        }
    }
}

/// Builds protobuf-c structs in an arena; called by generated code only, and valid only during the encode
/// that created it.
public struct ProtobufCEncoder {
    @usableFromInline
    let arena: UnsafeMutablePointer<Arena.State>

    init(arena: Arena) {
        self.arena = arena.state
    }

    /// Uninitialized memory for one C struct; generated code calls the struct's protobuf-c `init` on it.
    /// The generic helpers are inlinable so that generated code gets them specialized to its C types.
    @inlinable
    public func allocate<T>(_ type: T.Type) -> UnsafeMutablePointer<T> {
        allocateArray(type, count: 1)!
    }

    @inlinable
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
    @inlinable
    public func string(_ value: String, field: StaticString, in message: String) throws -> UnsafeMutablePointer<CChar> {
        let copied = value.utf8.withContiguousStorageIfAvailable { copyString($0) }
        guard let copied = copied ?? Array(value.utf8).withUnsafeBufferPointer({ copyString($0) }) else {
            throw ProtoEncodingError("\(message).\(field) contains U+0000, which protobuf-c cannot encode")
        }
        return copied
    }

    /// A NUL-terminated copy of `utf8`, or nil if it contains NUL.
    @inlinable
    func copyString(_ utf8: UnsafeBufferPointer<UInt8>) -> UnsafeMutablePointer<CChar>? {
        let out = allocateArray(CChar.self, count: utf8.count + 1)!
        if let base = utf8.baseAddress, !utf8.isEmpty {
            guard memchr(base, 0, utf8.count) == nil else { return nil }
            UnsafeMutableRawPointer(out).copyMemory(from: base, byteCount: utf8.count)
        }
        out[utf8.count] = 0
        return out
    }

    /// A copy of a `bytes` value (never nil, so protobuf-c can write an empty value inside a oneof).
    @inlinable
    public func bytes(_ value: [UInt8]) -> UnsafeMutablePointer<UInt8> {
        let out = allocateArray(UInt8.self, count: max(value.count, 1))!
        if !value.isEmpty {
            value.withUnsafeBufferPointer { out.initialize(from: $0.baseAddress!, count: $0.count) }
        }
        return out
    }

    /// A repeated field whose C and Swift element types are the same.
    @inlinable
    public func array<T>(_ values: [T]) -> UnsafeMutablePointer<T>? {
        guard let out = allocateArray(T.self, count: values.count) else { return nil }
        values.withUnsafeBufferPointer { out.initialize(from: $0.baseAddress!, count: $0.count) }
        return out
    }

    /// A repeated field whose elements need converting.
    @inlinable
    public func array<T, C>(_ values: [T], _ type: C.Type, _ transform: (T) throws -> C) rethrows -> UnsafeMutablePointer<C>? {
        guard let out = allocateArray(C.self, count: values.count) else { return nil }
        for (i, v) in values.enumerated() { (out + i).initialize(to: try transform(v)) }
        return out
    }

    /// Attaches unknown fields to the C message at `message`, so protobuf-c writes them after the known ones.
    @inlinable
    public func setUnknownFields(_ unknown: UnknownFields, on message: UnsafeMutableRawPointer) {
        if !unknown.isEmpty { attachUnknownFields(unknown, on: message) }
    }

    @usableFromInline
    func attachUnknownFields(_ unknown: UnknownFields, on message: UnsafeMutableRawPointer) {
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
