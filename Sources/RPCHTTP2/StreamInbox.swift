import NIOCore
import RPCCore
import Synchronization

/// What one stream received (request messages on a server, response parts on a client): filled on the
/// event loop, read by the RPC's task.
///
/// Flow control follows the reader: each element carries what it cost in the HTTP/2 windows, and that is
/// given back (``consumed``) only when the task takes it, batched so that a burst of small messages costs
/// one event-loop hop rather than one each. An element may also hold a reservation in the connection's
/// ``ReceiveBudget`` (its bytes were given back before it was complete, see ``InboundMessages``), released
/// when the task takes it. What the stream holds is thus bounded by its window plus one message.
final class StreamInbox<Element: Sendable>: AsyncSequence, Sendable {
    struct Message {
        var element: Element
        /// Window bytes to give back when the element is taken.
        var cost: Int
        /// Budget to release when the element is taken.
        var reserved = 0
    }

    private struct State {
        var queue: [Message] = []
        var head = 0
        var end: (any Error)?? = nil
        var waiter: CheckedContinuation<Element?, any Error>?
        /// Costs of taken messages not yet handed to `consumed`.
        var pendingCost = 0
        /// The loop wants to hear (through `consumed`) when the reader has taken everything queued.
        var notifyWhenCaughtUp = false
        var consumeScheduled = false
        /// The windows no longer matter (the peer ended the stream, or it is gone): costs were given back.
        var costsReleased = false
    }

    private let state = Mutex(State())
    private let budget: ReceiveBudget?
    /// Called (from the reading task) when costs should be given back or the reader caught up; it hops to
    /// the event loop, which calls ``takePendingCost()``.
    private let consumed: @Sendable () -> Void
    /// Give back costs once this many bytes are pending (or the queue runs dry).
    private let batch: Int

    init(batch: Int, budget: ReceiveBudget? = nil, consumed: @escaping @Sendable () -> Void) {
        self.batch = batch
        self.budget = budget
        self.consumed = consumed
    }

    // MARK: Event loop side

    func push(_ message: Message) {
        let waiter: CheckedContinuation<Element?, any Error>? = state.withLock { s in
            if let w = s.waiter {
                s.waiter = nil
                if !s.costsReleased { s.pendingCost += message.cost }
                return w
            }
            s.queue.append(message)
            return nil
        }
        guard let waiter else { return }
        waiter.resume(returning: message.element)
        budget?.release(message.reserved)
        scheduleConsumeIfNeeded(queueEmpty: true)
    }

    /// Ends the sequence: normally (`nil`) or with an error the reader gets.
    func finish(_ error: (any Error)? = nil) {
        let waiter: CheckedContinuation<Element?, any Error>? = state.withLock { s in
            guard s.end == nil else { return nil }
            s.end = .some(error)
            defer { s.waiter = nil }
            return s.waiter
        }
        if let error { waiter?.resume(throwing: error) } else { waiter?.resume(returning: nil) }
    }

    /// Whether the reader has taken everything queued; if not, ``consumed`` is called once it has.
    func readerCaughtUp() -> Bool {
        state.withLock { s in
            if s.head == s.queue.count { return true }
            s.notifyWhenCaughtUp = true
            return false
        }
    }

    /// The peer has ended the stream, so its window no longer matters: returns every cost not yet given back,
    /// and from now on taking a message costs nothing. Queued messages are then held against the budget
    /// (those that were not already); when it cannot take them, the reader pays for them as before.
    func releaseCostsAtEnd() -> Int {
        state.withLock { s in
            guard !s.costsReleased else { return 0 }
            var unreserved = 0
            for i in s.queue.indices[s.head...] where s.queue[i].reserved == 0 { unreserved += s.queue[i].cost }
            if unreserved > 0, let budget, !budget.reserveIfFree(unreserved) { return 0 }
            var bytes = s.pendingCost
            for i in s.queue.indices[s.head...] {
                bytes += s.queue[i].cost
                if s.queue[i].reserved == 0 { s.queue[i].reserved = s.queue[i].cost }
                s.queue[i].cost = 0
            }
            s.pendingCost = 0
            s.costsReleased = true
            return bytes
        }
    }

    /// The stream is gone: every cost not yet given back, and every reservation of messages not yet taken
    /// (which from now on release nothing).
    func releaseAll() -> (window: Int, reserved: Int) {
        state.withLock { s in
            var reserved = 0
            var window = s.costsReleased ? 0 : s.pendingCost
            for i in s.queue.indices[s.head...] {
                reserved += s.queue[i].reserved
                if !s.costsReleased { window += s.queue[i].cost }
                s.queue[i].reserved = 0
                s.queue[i].cost = 0
            }
            s.pendingCost = 0
            s.costsReleased = true
            return (window, reserved)
        }
    }

    /// Costs to give back now (resets the batch).
    func takePendingCost() -> Int {
        state.withLock { s in
            s.consumeScheduled = false
            defer { s.pendingCost = 0 }
            return s.pendingCost
        }
    }

    // MARK: Reader side

    private enum Outcome {
        case element(Element, reserved: Int, queueEmpty: Bool)
        case end((any Error)?)
    }

    /// The next element or the end, if there is one now.
    private static func take(from s: inout State) -> Outcome? {
        if s.head < s.queue.count {
            let m = s.queue[s.head]
            s.head += 1
            if !s.costsReleased { s.pendingCost += m.cost }
            if s.head == s.queue.count {
                s.queue.removeAll(keepingCapacity: true)
                s.head = 0
            } else if s.head >= 16, s.head * 2 >= s.queue.count {
                // A queue that never runs dry (a sender always a message ahead) must still let go of what was
                // taken, or it holds every message of the stream.
                s.queue.removeFirst(s.head)
                s.head = 0
            }
            return .element(m.element, reserved: m.reserved, queueEmpty: s.head == s.queue.count)
        }
        if let end = s.end { return .end(end) }
        return nil
    }

    private func deliver(_ outcome: Outcome) throws -> Element? {
        switch outcome {
        case .element(let element, let reserved, let queueEmpty):
            budget?.release(reserved)
            scheduleConsumeIfNeeded(queueEmpty: queueEmpty)
            return element
        case .end(let error?):
            throw error
        case .end(nil):
            return nil
        }
    }

    func next() async throws -> Element? {
        // Without suspending when something is there (a unary request always is): a continuation, its
        // cancellation handler and the task switch were a tenth of a unary call's CPU.
        if let outcome = state.withLock({ Self.take(from: &$0) }) { return try deliver(outcome) }
        return try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Element?, any Error>) in
                let outcome: Outcome? = state.withLock { s in
                    if let outcome = Self.take(from: &s) { return outcome }
                    if Task.isCancelled { return .end(CancellationError()) }
                    s.waiter = continuation
                    return nil
                }
                if let outcome { continuation.resume(with: Result { try deliver(outcome) }) }
            }
        } onCancel: {
            let waiter = state.withLock { s in
                defer { s.waiter = nil }
                return s.waiter
            }
            waiter?.resume(throwing: CancellationError())
        }
    }

    private func scheduleConsumeIfNeeded(queueEmpty: Bool) {
        let schedule = state.withLock { s in
            let caughtUp = queueEmpty && s.notifyWhenCaughtUp
            if caughtUp { s.notifyWhenCaughtUp = false }
            guard !s.consumeScheduled, caughtUp || (s.pendingCost > 0 && (queueEmpty || s.pendingCost >= batch)) else {
                return false
            }
            s.consumeScheduled = true
            return true
        }
        if schedule { consumed() }
    }

    func makeAsyncIterator() -> Iterator { Iterator(inbox: self) }

    struct Iterator: AsyncIteratorProtocol {
        let inbox: StreamInbox
        mutating func next() async throws -> Element? { try await inbox.next() }
    }
}

/// One stream's outgoing messages on their way to the event loop. A writer suspends while more than
/// `highWater` bytes wait there (the peer's window is shut, or the socket is full), so a client that stops
/// reading stops the handler instead of growing the server's memory.
///
/// Messages wait in `pending` until the event loop takes them all at once (`takePending`): a writer that
/// writes faster than the loop runs costs the loop one task per batch, not one per message, so a stream of
/// small messages cannot bury the loop's other work (timers, other connections) under a queue of tasks.
///
/// The gates of one connection may share a ``SendBudget``: while the connection's queued bytes are over it,
/// a writer also waits until its own stream's queue is empty, so each stream has at most one message queued.
final class OutboundGate: Sendable {
    private struct State {
        var queued = 0
        var pending: [OutboundMessage] = []
        var waiter: CheckedContinuation<Void, any Error>?
        var closed: (any Error)?
    }

    private let state = Mutex(State())
    let highWater: Int
    let lowWater: Int
    let budget: SendBudget?

    init(highWater: Int, lowWater: Int, budget: SendBudget? = nil) {
        self.highWater = highWater
        self.lowWater = lowWater
        self.budget = budget
    }

    /// Whether a writer may go on with `queued` bytes waiting: below the stream's mark (`lowWater` once it
    /// waited, so that it wakes for a batch rather than each frame), and, while the connection is over its
    /// budget, with nothing waiting at all. A waiter always has bytes queued, so its own `drained` wakes it.
    private func hasRoom(_ queued: Int, waited: Bool) -> Bool {
        queued <= (waited ? lowWater : highWater) && (queued == 0 || budget?.isOver != true)
    }

    /// Queues a framed message for the event loop; true when the loop must be asked to take it (nothing
    /// else was pending), false when a task already on its way will. Throws if the stream is gone.
    func push(_ framed: OutboundMessage) throws -> Bool {
        try state.withLock { s in
            if let closed = s.closed { throw closed }
            s.queued += framed.wireSize
            budget?.add(framed.wireSize)
            s.pending.append(framed)
            return s.pending.count == 1
        }
    }

    /// On the event loop: the messages pushed since the last call, in order.
    func takePending() -> [OutboundMessage] {
        state.withLock { s in
            defer { s.pending.removeAll() }
            return s.pending
        }
    }

    /// After handing them over: waits while the queue is above the high-water mark. A message already pushed
    /// was accepted: if the stream ends meanwhile (the peer may answer a unary call as soon as it has the
    /// request), the next `push` reports it, not this wait. (It used to throw here, and a unary call to such a
    /// server failed with CANCELLED now and then although its status was OK.)
    func waitForRoom() async throws {
        guard state.withLock({ !hasRoom($0.queued, waited: false) && $0.closed == nil }) else { return }
        try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Void, any Error>) in
                let resumeNow: Result<Void, any Error>? = state.withLock { s in
                    if let closed = s.closed { return .failure(closed) }
                    if hasRoom(s.queued, waited: true) { return .success(()) }
                    if Task.isCancelled { return .failure(CancellationError()) }
                    s.waiter = continuation
                    return nil
                }
                if let resumeNow { continuation.resume(with: resumeNow) }
            }
        } onCancel: {
            let waiter = state.withLock { s in
                defer { s.waiter = nil }
                return s.waiter
            }
            waiter?.resume(throwing: CancellationError())
        }
    }

    /// On the event loop: `bytes` left for the socket.
    func drained(_ bytes: Int) {
        let waiter = state.withLock { s -> CheckedContinuation<Void, any Error>? in
            s.queued -= bytes
            budget?.add(-bytes)
            guard hasRoom(s.queued, waited: true) else { return nil }
            defer { s.waiter = nil }
            return s.waiter
        }
        waiter?.resume()
    }

    /// On the event loop: the stream is gone, and the bytes it still had queued with it (dropped unsent).
    /// Closes the gate first (writers get `error` unless it was closed already), so that no write can add
    /// to the budget after its bytes were taken out: a handler off the loop could otherwise push in between.
    func discardQueued(_ error: any Error) {
        close(error)
        state.withLock { s in
            budget?.add(-s.queued)
            s.queued = 0
        }
    }

    /// On the event loop: the stream is gone; writers get `error`.
    func close(_ error: any Error) {
        let waiter = state.withLock { s -> CheckedContinuation<Void, any Error>? in
            if s.closed == nil { s.closed = error }
            s.pending.removeAll()
            defer { s.waiter = nil }
            return s.waiter
        }
        waiter?.resume(throwing: error)
    }
}

/// Response bytes queued on one connection across its streams (``GRPCServerConfiguration/maxConnectionSendBufferedBytes``):
/// what the streams' ``OutboundGate``s hold, from a writer's `push` until the bytes leave for the socket. Each
/// gate bounds its own stream; this bounds their sum, which a client that opens many streams and reads none
/// would otherwise grow to streams × the stream's limit. Over the limit, each writer waits until its stream's
/// queue is empty: one message per stream at a time, so a stream whose client reads still goes on (slower)
/// while others hold the budget, and the connection holds at most the limit plus one message per stream.
/// Only a count: every waiter is woken by its own stream draining, so no one needs to be told when the sum
/// drops.
final class SendBudget: Sendable {
    let limit: Int
    private let queued = Atomic(0)

    init(limit: Int) {
        self.limit = limit
    }

    var isOver: Bool { queued.load(ordering: .relaxed) > limit }
    /// Bytes queued now.
    var bytes: Int { queued.load(ordering: .relaxed) }

    func add(_ bytes: Int) {
        queued.add(bytes, ordering: .relaxed)
    }
}
