import Synchronization

extension EventLog {
    /// What became of one event of a stream.
    public enum StreamOutcome: Sendable {
        case stored(AppendedEvent)
        case refused(DomainError)
    }

    /// Streaming ingest. `next` yields the stream's events (or why one is not valid) until it returns nil;
    /// `answer` gets one outcome per event, in the stream's order, each once its event is durable. Events are
    /// stored in the stream's order.
    ///
    /// Throughput comes from batching what has arrived: while one batch is being committed (one transaction,
    /// one fsync), the next events are read and wait, up to ``Settings/maximumBatch`` events or
    /// ``Settings/maximumStreamBatchBytes`` of payload; then they go in the next batch. Reading stops while
    /// that much waits, so a fast client is held back by flow control rather than buffered. A failure to store
    /// ends the call with that error; so does a failure to answer (the client went away), and then the events
    /// of the batch not yet answered may be stored all the same: a client that resends after a broken stream
    /// sets idempotency keys, as for any call whose answer can be lost.
    public func publish(
        streamOf next: @escaping @Sendable () async throws -> Result<NewEvent, DomainError>?,
        caller: Principal,
        answer: @Sendable (StreamOutcome) async throws -> Void
    ) async throws {
        let queue = BatchQueue<Result<NewEvent, DomainError>>(capacity: settings.maximumBatch, bytes: settings.maximumStreamBatchBytes) {
            (try? $0.get())?.payload.count ?? 0
        }
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask {
                do {
                    while let event = try await next() {
                        guard await queue.push(event) else { return }
                    }
                    queue.finish(throwing: nil)
                } catch {
                    queue.finish(throwing: error)
                }
            }
            do {
                while let batch = try await queue.take() {
                    let valid = batch.compactMap { try? $0.get() }
                    var stored = valid.isEmpty ? [] : try await publish(valid, caller: caller)[...]
                    for event in batch {
                        switch event {
                        case .success:
                            try await answer(.stored(stored.removeFirst()))
                        case .failure(let error):
                            try await answer(.refused(error))
                        }
                    }
                }
            } catch {
                queue.close()
                group.cancelAll()
                throw error
            }
        }
    }
}

/// Elements handed from one producer to one consumer in batches: the consumer takes everything that waits,
/// the producer waits while `capacity` elements, or elements of `bytes` in all (by `size`), do.
final class BatchQueue<Element: Sendable>: Sendable {
    private struct State: Sendable {
        var elements: [Element] = []
        var bytes = 0
        var end: Result<Void, any Error>?
        var closed = false
        var consumer: CheckedContinuation<[Element]?, any Error>?
        var producer: CheckedContinuation<Bool, Never>?
    }

    private let state = Mutex(State())
    private let capacity: Int
    private let byteCapacity: Int
    private let size: @Sendable (Element) -> Int

    init(capacity: Int, bytes: Int = .max, size: @escaping @Sendable (Element) -> Int = { _ in 0 }) {
        self.capacity = max(1, capacity)
        byteCapacity = max(1, bytes)
        self.size = size
    }

    private func isFull(_ s: State) -> Bool {
        s.elements.count >= capacity || s.bytes >= byteCapacity
    }

    /// Adds `element`, then waits while the queue is full. False once the consumer has closed the queue.
    func push(_ element: Element) async -> Bool {
        let (consumer, handed, full, closed) = state.withLock { s -> (CheckedContinuation<[Element]?, any Error>?, [Element], Bool, Bool) in
            guard !s.closed else { return (nil, [], false, true) }
            s.elements.append(element)
            s.bytes += size(element)
            guard let consumer = s.consumer else { return (nil, [], isFull(s), false) }
            s.consumer = nil
            defer { s.elements = []; s.bytes = 0 }
            return (consumer, s.elements, false, false)
        }
        if closed { return false }
        consumer?.resume(returning: handed)
        guard full else { return true }
        return await withCheckedContinuation { continuation in
            let now = state.withLock { s -> Bool? in
                if s.closed { return false }
                if !isFull(s) { return true }
                s.producer = continuation
                return nil
            }
            if let now { continuation.resume(returning: now) }
        }
    }

    /// No more elements; `error`, if any, is thrown to the consumer once it has taken the rest.
    func finish(throwing error: (any Error)?) {
        let consumer = state.withLock { s -> CheckedContinuation<[Element]?, any Error>? in
            s.end = error.map { .failure($0) } ?? .success(())
            defer { s.consumer = nil }
            return s.consumer
        }
        if let consumer {
            if let error { consumer.resume(throwing: error) } else { consumer.resume(returning: nil) }
        }
    }

    /// Everything that waits (at least one element), or nil once the producer has finished and all is taken.
    func take() async throws -> [Element]? {
        try await withCheckedThrowingContinuation { continuation in
            let (outcome, producer) = state.withLock { s -> (Result<[Element]?, any Error>?, CheckedContinuation<Bool, Never>?) in
                if !s.elements.isEmpty {
                    defer { s.elements = []; s.bytes = 0; s.producer = nil }
                    return (.success(s.elements), s.producer)
                }
                switch s.end {
                case .success?: return (.success(nil), nil)
                case .failure(let error)?: return (.failure(error), nil)
                case nil:
                    s.consumer = continuation
                    return (nil, nil)
                }
            }
            producer?.resume(returning: true)
            if let outcome { continuation.resume(with: outcome) }
        }
    }

    /// The consumer stops: a waiting producer is released, and later pushes are refused.
    func close() {
        let producer = state.withLock { s -> CheckedContinuation<Bool, Never>? in
            s.closed = true
            defer { s.producer = nil }
            return s.producer
        }
        producer?.resume(returning: false)
    }
}
