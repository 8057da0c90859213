import NIOCore

/// gRPC's length-prefixed messages (gRPC PROTOCOL-HTTP2.md, Length-Prefixed-Message; doc/statuscodes.md): a
/// flag byte (1 = compressed), a 4-byte big-endian length, the message. DATA frame boundaries mean nothing to it.
struct MessageDeframer {
    enum Failure: Error, Equatable {
        /// The declared length exceeds the limit; checked before buffering (RESOURCE_EXHAUSTED, as grpc-go).
        case tooLarge(length: Int, limit: Int)
        /// Flag 1 without a `grpc-encoding` (PROTOCOL-HTTP2.md, Compressed-Flag).
        case compressedWithoutEncoding
        /// A flag byte other than 0 and 1: PROTOCOL-HTTP2.md defines no other value (INTERNAL, as grpc-go's
        /// "unrecognized compressed flag").
        case invalidFlag(UInt8)
        case decompressionFailed
        case decompressedTooLarge(limit: Int)
        /// The stream ended inside a message (INTERNAL, as grpc-go).
        case truncated
    }

    struct Message {
        var bytes: [UInt8]
        /// What the message occupied in DATA frames, for flow control.
        var wireSize: Int
    }

    let maxMessageSize: Int
    let encoding: MessageEncoding?
    private var buffer = ByteBuffer()
    /// A message whose whole size is accounted for (``reserveMessage()``), arriving straight into an array of
    /// its declared length; the buffer stays empty until it is complete.
    private var reserved: (flag: UInt8, length: Int, body: [UInt8])?

    init(maxMessageSize: Int, encoding: MessageEncoding?) {
        self.maxMessageSize = maxMessageSize
        self.encoding = encoding == .identity ? nil : encoding
    }

    mutating func append(_ bytes: UnsafeRawBufferPointer) {
        guard !bytes.isEmpty else { return }
        var bytes = bytes
        // Not bound to a local: a second reference to the body would make the append copy it.
        if reserved != nil, reserved!.body.count < reserved!.length {
            let count = min(bytes.count, reserved!.length - reserved!.body.count)
            UnsafeRawBufferPointer(rebasing: bytes[..<count]).withMemoryRebound(to: UInt8.self) { reserved?.body.append(contentsOf: $0) }
            bytes = UnsafeRawBufferPointer(rebasing: bytes[count...])
            guard !bytes.isEmpty else { return }
        }
        if buffer.readableBytes == 0 { buffer.clear() }
        buffer.writeBytes(bytes)
    }

    /// Bytes of a message not yet complete.
    var pendingBytes: Int { buffer.readableBytes + (reserved.map { 5 + $0.body.count } ?? 0) }

    /// What the deframer holds on to, read bytes included (for tests).
    var retainedBytes: Int { buffer.capacity + (reserved?.body.capacity ?? 0) }

    /// The length a started message declared, once its prefix is in.
    var pendingMessageLength: Int? {
        if let reserved { return reserved.length }
        guard buffer.readableBytes >= 5 else { return nil }
        return buffer.getInteger(at: buffer.readerIndex + 1, as: UInt32.self).map(Int.init)
    }

    /// A whole message at the start of `bytes`, with nothing buffered before it, copied once straight out of
    /// them (a unary request arrives so: buffering it first cost a copy and an allocation); `bytes` then
    /// starts after it. Nil when nothing is whole there: the caller appends what is left. On a failure
    /// `bytes` still starts at the failing message, which the caller appends, so that its bytes count.
    mutating func whole(from bytes: inout UnsafeRawBufferPointer) throws(Failure) -> Message? {
        guard pendingBytes == 0, bytes.count >= 5 else { return nil }
        let flag = bytes[0]
        guard flag <= 1 else { throw .invalidFlag(flag) }
        let length = Int(bytes[1]) << 24 | Int(bytes[2]) << 16 | Int(bytes[3]) << 8 | Int(bytes[4])
        guard length <= maxMessageSize else { throw .tooLarge(length: length, limit: maxMessageSize) }
        guard bytes.count >= 5 + length else { return nil }
        let message = try decoded(Array(UnsafeRawBufferPointer(rebasing: bytes[5..<(5 + length)])), flag: flag)
        bytes = UnsafeRawBufferPointer(rebasing: bytes[(5 + length)...])
        return Message(bytes: message, wireSize: 5 + length)
    }

    /// The receive budget holds room for all of the message that has started (its prefix is in, its length
    /// allowed): the rest of it goes into an array of its declared length, which is handed over as it is.
    /// Buffered, a 4 MiB message was copied five times over as the buffer doubled, then once more out of it,
    /// each copy into fresh pages (an upload of such messages: ~3,000 page faults each).
    mutating func reserveMessage() {
        guard reserved == nil, let length = pendingMessageLength, length <= maxMessageSize, buffer.readableBytes < 5 + length,
              let flag = buffer.getInteger(at: buffer.readerIndex, as: UInt8.self), flag <= 1
        else { return }
        var body: [UInt8] = []
        body.reserveCapacity(length)
        buffer.withUnsafeReadableBytes { bytes in
            UnsafeRawBufferPointer(rebasing: bytes[5...]).withMemoryRebound(to: UInt8.self) { body.append(contentsOf: $0) }
        }
        buffer.clear()
        reserved = (flag, length, body)
    }

    mutating func next() throws(Failure) -> Message? {
        if let message = reserved {
            guard message.body.count == message.length else { return nil }
            // A message that fails stays (`pendingBytes`): the stream's end gives its bytes back.
            let bytes = try decoded(message.body, flag: message.flag)
            reserved = nil
            return Message(bytes: bytes, wireSize: 5 + message.length)
        }
        guard buffer.readableBytes >= 5,
              let flag = buffer.getInteger(at: buffer.readerIndex, as: UInt8.self),
              let length32 = buffer.getInteger(at: buffer.readerIndex + 1, as: UInt32.self)
        else { return nil }
        guard flag <= 1 else { throw .invalidFlag(flag) }
        let length = Int(length32)
        guard length <= maxMessageSize else { throw .tooLarge(length: length, limit: maxMessageSize) }
        guard buffer.readableBytes >= 5 + length else { return nil }
        // A message that fails stays in the buffer (`pendingBytes`): the stream's end gives its bytes back.
        let message = try decoded(buffer.getBytes(at: buffer.readerIndex + 5, length: length)!, flag: flag)
        buffer.moveReaderIndex(forwardBy: 5 + length)
        // A stream whose DATA never ends on a message boundary (a sender filling frames as its window allows)
        // never empties the buffer: drop what was read once it outweighs what is left, or the buffer would
        // grow by every byte of the stream. (Moving the rest costs no more than reading it did.)
        if buffer.readerIndex >= buffer.readableBytes, buffer.readerIndex >= 4096 { buffer.discardReadBytes() }
        return Message(bytes: message, wireSize: 5 + length)
    }

    /// The message as sent: decompressed when its flag says so.
    private func decoded(_ message: [UInt8], flag: UInt8) throws(Failure) -> [UInt8] {
        guard flag != 0 else { return message }
        guard let encoding else { throw .compressedWithoutEncoding }
        do {
            return try encoding.decompress(message, limit: maxMessageSize)
        } catch {
            throw error.reason == .tooLarge ? .decompressedTooLarge(limit: maxMessageSize) : .decompressionFailed
        }
    }

    /// At the end of the stream: nothing may be left over.
    func finish() throws(Failure) {
        if pendingBytes > 0 { throw .truncated }
    }
}

enum MessageFramer {
    /// The framed message, compressed when `encoding` is set and compression makes it smaller.
    static func frame(_ message: [UInt8], encoding: MessageEncoding?) -> OutboundMessage {
        if let compressed = encoding?.compress(message) { return OutboundMessage(compressed, compressedFlag: 1) }
        return OutboundMessage(message, compressedFlag: 0)
    }
}

/// Bytes on their way out of a stream: a gRPC message as PROTOCOL-HTTP2 frames it ("Length-Prefixed-Message":
/// the compressed flag, the length as 4 bytes big-endian, the message), or a plain HTTP body chunk as it is.
/// The payload stays the writer's own array and the prefix is made as it is sent, so the bytes are copied
/// once, into nghttp2's frame (copying them into a `ByteBuffer` first cost a copy and, as NIO rounds a
/// buffer's capacity up to a power of two, up to twice the memory while queued).
struct OutboundMessage: Sendable {
    let payload: [UInt8]
    /// The prefix's compressed flag; nil: no prefix.
    let compressedFlag: UInt8?

    init(_ payload: [UInt8], compressedFlag: UInt8?) {
        self.payload = payload
        self.compressedFlag = compressedFlag
    }

    /// Bytes on the wire, the prefix included.
    var wireSize: Int { payload.count + (compressedFlag == nil ? 0 : 5) }

    /// Copies the wire bytes from `offset` into `buffer`, as many as fit; returns how many.
    func copy(from offset: Int, into buffer: UnsafeMutableRawBufferPointer) -> Int {
        var written = 0
        var offset = offset
        if let compressedFlag, offset < 5 {
            let length = UInt32(payload.count)
            written = min(5 - offset, buffer.count)
            for i in 0..<written {
                let k = offset + i  // 0: the flag; 1...4: the length, most significant byte first
                buffer[i] = k == 0 ? compressedFlag : UInt8(truncatingIfNeeded: length >> (8 * (4 - k)))
            }
            offset += written
            guard offset == 5 else { return written }
        }
        let start = offset - (compressedFlag == nil ? 0 : 5)
        let take = min(payload.count - start, buffer.count - written)
        guard take > 0 else { return written }
        payload.withUnsafeBytes { bytes in
            UnsafeMutableRawBufferPointer(rebasing: buffer[written..<written + take])
                .copyMemory(from: UnsafeRawBufferPointer(rebasing: bytes[start..<start + take]))
        }
        return written + take
    }

    /// The wire bytes, as one array (for tests).
    var wireBytes: [UInt8] {
        [UInt8](unsafeUninitializedCapacity: wireSize) { buffer, count in
            count = copy(from: 0, into: UnsafeMutableRawBufferPointer(buffer))
        }
    }
}
