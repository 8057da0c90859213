import NIOCore
import Synchronization

/// Framed messages waiting for nghttp2 to ask for a stream's DATA.
struct OutboundQueue {
    private var messages: [OutboundMessage] = []
    private var head = 0
    /// Wire bytes of `messages[head]` already sent.
    private var sent = 0

    var isEmpty: Bool { head == messages.count }

    /// Messages the queue still references, sent ones included (for tests).
    var retainedCount: Int { messages.count }

    mutating func append(_ message: OutboundMessage) {
        messages.append(message)
    }

    /// Copies as much as fits into `buffer` and returns how much that was.
    mutating func drain(into buffer: UnsafeMutableRawBufferPointer) -> Int {
        var written = 0
        while written < buffer.count, head < messages.count {
            let message = messages[head]
            let take = message.copy(from: sent, into: UnsafeMutableRawBufferPointer(rebasing: buffer[written...]))
            written += take
            sent += take
            if sent == message.wireSize {
                sent = 0
                head += 1
                if head == messages.count {
                    messages.removeAll(keepingCapacity: true)
                    head = 0
                } else if head >= 16, head * 2 >= messages.count {
                    // A queue that never drains must still let go of what was sent.
                    messages.removeFirst(head)
                    head = 0
                }
            }
        }
        return written
    }
}

/// A stream's received DATA turned into messages, with the flow-control accounting both sides use.
///
/// A complete message costs the window bytes not yet given back, paid when the reader takes it
/// (``StreamInbox``). A message still arriving may be larger than the window, so its bytes must be given back
/// before the reader can take it ("early"), or it could never arrive whole (one no larger than the window
/// needs none of this: it arrives once the reader has taken what was queued); bytes given back early are
/// outside the HTTP/2 windows, so they are held against the connection's ``ReceiveBudget``: the message
/// reserves its whole wire size there once its length prefix is in and the reader has taken everything queued
/// (a sender that runs ahead of its reader waits for it), and the reservation is released when the reader
/// takes the message. A stream the budget cannot serve yet waits for credit (``awaitsCredit``).
struct InboundMessages {
    var deframer: MessageDeframer
    /// Bytes of the message still arriving that were given back early.
    private var givenBack = 0
    /// Budget reserved for the message still arriving (its wire size), or 0.
    private(set) var reserved = 0
    /// The message still arriving needs a reservation the budget could not make yet.
    private(set) var awaitsCredit = false

    /// Messages of at most this many bytes on the wire fit the stream's window: never given back early.
    let reserveAbove: Int

    init(maxMessageSize: Int, encoding: MessageEncoding?, reserveAbove: Int = 0) {
        deframer = MessageDeframer(maxMessageSize: maxMessageSize, encoding: encoding)
        self.reserveAbove = reserveAbove
    }

    /// Feeds DATA bytes and hands each complete message to `deliver`, with the window bytes it still costs and
    /// the reservation to release when it is taken.
    mutating func receive(
        _ bytes: UnsafeRawBufferPointer,
        deliver: (_ message: [UInt8], _ cost: Int, _ reserved: Int) -> Void
    ) throws(MessageDeframer.Failure) {
        var rest = bytes
        do {
            while let message = try deframer.whole(from: &rest) { delivered(message, deliver) }
        } catch {
            deframer.append(rest)
            throw error
        }
        deframer.append(rest)
        while let message = try deframer.next() { delivered(message, deliver) }
    }

    private mutating func delivered(
        _ message: MessageDeframer.Message, _ deliver: (_ message: [UInt8], _ cost: Int, _ reserved: Int) -> Void
    ) {
        deliver(message.bytes, message.wireSize - givenBack, reserved)
        givenBack = 0
        reserved = 0
        awaitsCredit = false
    }

    /// The bytes of the message still arriving to give back now: those not given back yet, once the message
    /// holds a reservation. It asks for one when `readerCaughtUp()` says the reader has taken everything
    /// queued (which otherwise arranges to be asked again when it has); `ahead` lets a stream that waited
    /// in line for credit take it before newcomers.
    mutating func settle(budget: ReceiveBudget?, ahead: Bool = false, readerCaughtUp: () -> Bool) -> Int {
        let pending = deframer.pendingBytes
        guard pending > givenBack else { return 0 }
        if reserved == 0 {
            guard let length = deframer.pendingMessageLength, 5 + length > reserveAbove, readerCaughtUp() else { return 0 }
            guard budget?.reserve(5 + length, ahead: ahead) ?? true else {
                awaitsCredit = true
                return 0
            }
            reserved = budget == nil ? 0 : 5 + length
            awaitsCredit = false
            if budget != nil { deframer.reserveMessage() }
        }
        defer { givenBack = pending }
        return pending - givenBack
    }

    /// The stream is gone: the bytes of the message still arriving not yet given back, and its reservation
    /// (the message will never be taken).
    mutating func abandon() -> (window: Int, reserved: Int) {
        defer {
            givenBack = deframer.pendingBytes
            reserved = 0
            awaitsCredit = false
        }
        return (max(0, deframer.pendingBytes - givenBack), reserved)
    }
}

/// What one connection may hold of request bytes given back to the peer's windows before a reader took them
/// (see ``InboundMessages``): the HTTP/2 windows bound the rest. Reservations are made on the event loop and
/// released by readers on any thread; a stream that cannot reserve waits in line on the loop, and the first
/// release after that calls `wake` so the loop can serve it. When nothing is reserved a reservation always
/// succeeds, so one message of any allowed size can always arrive.
final class ReceiveBudget: Sendable {
    private struct State {
        var reserved = 0
        var waiting = false
        var wakeScheduled = false
    }

    let limit: Int
    private let state = Mutex(State())
    private let wake: @Sendable () -> Void

    init(limit: Int, wake: @escaping @Sendable () -> Void) {
        self.limit = limit
        self.wake = wake
    }

    /// Bytes reserved now.
    var reserved: Int { state.withLock { $0.reserved } }

    /// Reserves `bytes` if they fit and nobody waits in line (`ahead`: the caller is first in that line);
    /// otherwise remembers that someone waits, so that the next release wakes the loop.
    func reserve(_ bytes: Int, ahead: Bool = false) -> Bool {
        state.withLock { s in
            if take(bytes, from: &s, ahead: ahead) { return true }
            s.waiting = true
            return false
        }
    }

    /// Reserves `bytes` only if that needs no waiting (bytes that could also be paid for by the reader).
    func reserveIfFree(_ bytes: Int) -> Bool {
        state.withLock { take(bytes, from: &$0, ahead: false) }
    }

    private func take(_ bytes: Int, from s: inout State, ahead: Bool) -> Bool {
        guard ahead || !s.waiting, s.reserved == 0 || s.reserved + bytes <= limit else { return false }
        s.reserved += bytes
        return true
    }

    func release(_ bytes: Int) {
        guard bytes > 0 else { return }
        let wakeNow = state.withLock { s in
            s.reserved -= bytes
            guard s.waiting, !s.wakeScheduled else { return false }
            s.wakeScheduled = true
            return true
        }
        if wakeNow { wake() }
    }

    /// On the loop, before serving the line: a release from now on wakes the loop again.
    func serving() {
        state.withLock { $0.wakeScheduled = false }
    }

    /// On the loop, after serving the line: whether anyone is left in it.
    func served(stillWaiting: Bool) {
        state.withLock { $0.waiting = stillWaiting }
    }
}
