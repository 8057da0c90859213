import GatewayProtos
import RPCCore
import Synchronization

/// Every worker holds a `Subscribe` stream while one publisher publishes (open loop at `--rate`, else as fast
/// as it can): an operation is one delivery, timed from the event's intended publish time (carried in its
/// payload) to its receipt. At the end it checks that every subscriber got every event published.
struct Fanout: Scenario {
    let payload: Int
    let type = "bench.fanout.\(UInt64.random(in: 0...UInt64.max))"

    /// Sequences each subscriber received, and how many have seen the start signal.
    private final class Tally: Sendable {
        let received: [Locked<Set<UInt64>>]
        let ready = Locked(0)
        let published = Locked<[UInt64]>([])

        init(subscribers: Int) {
            received = (0..<subscribers).map { _ in Locked([]) }
        }
    }

    func run(_ worker: Worker) async {}  // runAll drives everything

    func runAll(_ workers: [Worker]) async -> [String] {
        let tally = Tally(subscribers: workers.count)
        let window = workers[0].window
        var publisherShape = workers[0].shape
        publisherShape.connections = 1
        publisherShape.streams = 1
        let publisher = Worker(
            index: 0, transport: workers[0].transport, metadata: workers[0].metadata, shape: publisherShape, window: window,
            latencies: ShardedLatencies(shards: 1)
        )
        var notes: [String] = []
        await withTaskGroup(of: Bool.self) { group in
            for (index, worker) in workers.enumerated() {
                group.addTask {
                    await subscribe(worker, received: tally.received[index], ready: tally.ready)
                    return false
                }
            }
            group.addTask {
                await publish(publisher, subscribers: workers.count, tally: tally)
                return true
            }
            // When the publisher is done, give the deliveries a moment to arrive, then end the subscriptions.
            while let publisherDone = await group.next() {
                guard publisherDone else { continue }
                let published = Set(tally.published.withLock { $0 })
                let deadline = monotonicNanos() + 5_000_000_000
                while monotonicNanos() < deadline, !tally.received.allSatisfy({ $0.withLock { published.isSubset(of: $0) } }) {
                    try? await Task.sleep(for: .milliseconds(20))
                }
                group.cancelAll()
                let missing = tally.received.reduce(0) { total, set in total + set.withLock { published.subtracting($0).count } }
                notes.append("published \(published.count) events to \(workers.count) subscribers")
                notes.append(missing == 0
                    ? "every subscriber received every event"
                    : "\(missing) of \(published.count * workers.count) deliveries had not arrived 5 s after the window")
            }
        }
        for (code, count) in publisher.counts.errors { workers[0].counts.errors["publish \(code)", default: 0] += count }
        return notes
    }

    private func subscribe(_ worker: Worker, received: Locked<Set<UInt64>>, ready: Locked<Int>) async {
        // Where to resume after a dropped stream, and whether this subscription has said it is live.
        let lastSequence = Locked<UInt64?>(nil)
        let signalled = Locked(false)
        while !Task.isCancelled {
            do {
                let request = try Gateway_Event_V1_SubscribeRequest.with {
                    $0.filter = .with { $0.types = [type] }
                    if let last = lastSequence.withLock({ $0 }) { $0.fromSequence = last + 1 }
                }.serializedBytes()
                let lifetime = worker.streamOptions
                try await worker.transport.withStream(
                    descriptor: Gateway_Event_V1_EventService.Method.subscribe, metadata: worker.metadata, options: lifetime
                ) { stream in
                    try await stream.outbound.write(request)
                    try await stream.finish()
                    var inbound = stream.inbound.makeAsyncIterator()
                    while let bytes = try await Calls.nextMessage(&inbound) {
                        let done = monotonicNanos()
                        guard case .event(let event)? = try Gateway_Event_V1_SubscribeResponse(serializedBytes: bytes).item else { continue }
                        lastSequence.withLock { $0 = event.sequence }
                        guard event.payload.count >= 8 else {
                            // The start signal: this subscription is live.
                            if signalled.withLock({ first in defer { first = true }; return !first }) { ready.withLock { $0 += 1 } }
                            continue
                        }
                        let published = event.payload.prefix(8).enumerated().reduce(UInt64(0)) { $0 | UInt64($1.element) << (8 * UInt64($1.offset)) }
                        received.withLock { _ = $0.insert(event.sequence) }
                        worker.received(bytes: bytes.count, at: done)
                        worker.completed(intended: published, at: done)
                    }
                }
            } catch {
                if Task.isCancelled { return }
                worker.failed(error)
                try? await Task.sleep(for: .milliseconds(10))
            }
        }
    }

    private func publish(_ publisher: Worker, subscribers: Int, tally: Tally) async {
        // A start signal (an empty payload) until every subscription has seen one, so that the events that
        // count are published to subscriptions that are all live.
        let signal = (try? Gateway_Event_V1_PublishEventRequest.with {
            $0.event = .with { $0.type = type; $0.aggregateId = "bench" }
        }.serializedBytes()) ?? []
        while tally.ready.withLock({ $0 }) < subscribers {
            guard !publisher.isOver else { return }
            do {
                _ = try await Calls.call(publisher, Gateway_Event_V1_EventService.Method.publishEvent, [signal])
            } catch {
                publisher.failed(error)
            }
            try? await Task.sleep(for: .milliseconds(50))
        }
        let padding = [UInt8](repeating: 0x61, count: max(0, payload - 8))
        while let intended = await publisher.nextStart() {
            do {
                let stamp = (0..<8).map { UInt8(truncatingIfNeeded: intended >> (8 * UInt64($0))) }
                let request = try Gateway_Event_V1_PublishEventRequest.with {
                    $0.event = .with { $0.type = type; $0.aggregateId = "bench"; $0.payload = stamp + padding }
                }.serializedBytes()
                let reply = try await publisher.transport.withStream(
                    descriptor: Gateway_Event_V1_EventService.Method.publishEvent, metadata: publisher.metadata, options: publisher.options
                ) { stream in
                    try await stream.outbound.write(request)
                    try await stream.finish()
                    var inbound = stream.inbound.makeAsyncIterator()
                    return try await Calls.nextMessage(&inbound)
                }
                guard let reply else { throw RPCError(code: .internal, message: "PublishEvent answered nothing") }
                let sequence = try Gateway_Event_V1_PublishEventResponse(serializedBytes: reply).sequence
                tally.published.withLock { $0.append(sequence) }
            } catch {
                publisher.failed(error)
            }
        }
    }
}
