import NIOCore

/// Framed messages waiting for nghttp2 to ask for a stream's DATA.
struct OutboundQueue {
    private var buffers: [ByteBuffer] = []
    private var head = 0

    var isEmpty: Bool { head == buffers.count }

    mutating func append(_ framed: ByteBuffer) {
        buffers.append(framed)
    }

    /// Copies as much as fits into `buffer` and returns how much that was.
    mutating func drain(into buffer: UnsafeMutableRawBufferPointer) -> Int {
        var written = 0
        while written < buffer.count, head < buffers.count {
            let available = buffers[head].readableBytes
            let take = min(available, buffer.count - written)
            buffers[head].readWithUnsafeReadableBytes { bytes in
                UnsafeMutableRawBufferPointer(rebasing: buffer[written..<written + take])
                    .copyMemory(from: UnsafeRawBufferPointer(rebasing: bytes[0..<take]))
                return take
            }
            written += take
            if take == available {
                head += 1
                if head == buffers.count {
                    buffers.removeAll(keepingCapacity: true)
                    head = 0
                }
            }
        }
        return written
    }
}

/// A stream's received DATA turned into messages, with the flow-control accounting both sides use: a
/// complete message costs the window bytes not yet settled when the reader takes it; the bytes of a message
/// still arriving are settled as they come (``StreamInbox/settlePartial(_:)`` decides when they are given back).
struct InboundMessages {
    var deframer: MessageDeframer
    /// Bytes of the message still arriving that were already settled.
    private var consumedAhead = 0

    init(maxMessageSize: Int, encoding: MessageEncoding?) {
        deframer = MessageDeframer(maxMessageSize: maxMessageSize, encoding: encoding)
    }

    /// Feeds DATA bytes: hands each complete message and its cost to `deliver`, and returns the bytes of the
    /// message still arriving that are not settled yet.
    mutating func receive(
        _ bytes: UnsafeRawBufferPointer,
        deliver: ([UInt8], _ cost: Int) -> Void
    ) throws(MessageDeframer.Failure) -> Int {
        deframer.append(bytes)
        while let message = try deframer.next() {
            deliver(message.bytes, max(0, message.wireSize - consumedAhead))
            consumedAhead = 0
        }
        let pending = deframer.pendingBytes
        guard pending > consumedAhead else { return 0 }
        defer { consumedAhead = pending }
        return pending - consumedAhead
    }
}
