import GatewayApplication
import MemoryAdapters
import Synchronization
import Testing

private func event(_ i: Int, type: String = "Thing", key: String? = nil) throws -> NewEvent {
    try NewEvent(type: type, aggregateID: "agg-\(i % 3)", payload: Array("p\(i)".utf8), idempotencyKey: key)
}

private func makeLog(_ store: MemoryEventStore = MemoryEventStore()) -> EventLog {
    let clock = FakeWallClock(UnixTime(seconds: 1_800_000_000))
    var settings = EventLog.Settings.defaults
    settings.maximumBatch = 50
    return EventLog(store: store, clock: clock, ids: MonotonicIDGenerator(clock: clock), pageTokens: PlainSealer(), settings: settings)
}

private let alice = Principal(uid: "alice", expiresAt: 1_900_000_000)
private let bob = Principal(uid: "bob", expiresAt: 1_900_000_000)
private let admin = Principal(uid: "root", isAdmin: true, expiresAt: 1_900_000_000)

@Suite struct EventLogTests {
    @Test func publishingAssignsConsecutiveSequencesAndHonoursIdempotencyKeys() async throws {
        let log = makeLog()
        let first = try await log.publish([event(1), event(2, key: "k")], caller: alice)
        #expect(first.map(\.event.sequence) == [1, 2])
        let again = try await log.publish([event(3, key: "k")], caller: alice)
        #expect(again[0].duplicate && again[0].event == first[1].event)
        let bobs = try await log.publish([event(3, key: "k")], caller: bob)
        #expect(!bobs[0].duplicate && bobs[0].event.sequence == 3)
    }

    @Test func publishersCannotUseTheGatewaysOwnEventTypes() {
        for type in DomainEvent.reservedTypes {
            #expect(throws: DomainError.invalid("events[2].type", "\"\(type)\" is reserved for the gateway's own domain events")) {
                try NewEvent(type: type, aggregateID: "u1", payload: [], field: "events[2].")
            }
        }
        #expect(throws: Never.self) { try NewEvent(type: "UserCreated", aggregateID: "u1", payload: [], reservedTypeAllowed: true) }
    }

    @Test func validationNamesTheField() {
        #expect(throws: DomainError.invalid("event.type", "is required")) { try NewEvent(type: "", aggregateID: "", payload: []) }
        #expect(throws: DomainError.self) { try NewEvent(type: "a b", aggregateID: "", payload: []) }
        #expect(throws: DomainError.self) { try NewEvent(type: "t", aggregateID: "", payload: Array(repeating: 0, count: (1 << 20) + 1)) }
    }

    @Test func listingPagesThroughMatchingEventsOnly() async throws {
        let log = makeLog()
        _ = try await log.publish((0..<30).map { try event($0) }, caller: alice)
        _ = try await log.publish([event(99, type: "Other")], caller: bob)
        var seen: [Int64] = []
        var token = ""
        repeat {
            let page = try await log.list(filter: EventFilter(aggregateIDs: ["agg-1"]), afterSequence: 0, pageSize: 4, pageToken: token, caller: alice)
            seen += page.items.map(\.sequence)
            token = page.nextPageToken ?? ""
        } while !token.isEmpty
        #expect(seen == stride(from: 2, through: 30, by: 3).map(Int64.init))
        #expect(try await log.list(filter: EventFilter(), afterSequence: 0, pageSize: 100, pageToken: "", caller: alice).items.count == 30)
        #expect(try await log.list(filter: EventFilter(), afterSequence: 0, pageSize: 100, pageToken: "", caller: admin).items.count == 31)
    }

    @Test func aSubscriptionCatchesUpThenGoesLiveWithoutGapOrDuplicate() async throws {
        let store = MemoryEventStore()
        let log = makeLog(store)
        _ = try await log.publish((0..<40).map { try event($0) }, caller: alice)
        let subscription = try await log.subscribe(filter: EventFilter(), from: .sequence(11), heartbeat: .seconds(5), caller: alice)
        let publisher = Task {
            for chunk in 0..<20 {
                _ = try await log.publish((0..<10).map { try event(100 + chunk * 10 + $0) }, caller: alice)
                await Task.yield()
            }
        }
        var received: [Int64] = []
        for try await item in subscription {
            guard case .event(let event) = item else { continue }
            received.append(event.sequence)
            if received.count == 30 + 200 { break }
        }
        try await publisher.value
        #expect(received == Array(11...240))
    }

    @Test func anIdleSubscriptionSendsHeartbeatsAndStartsFromNow() async throws {
        let log = makeLog()
        _ = try await log.publish([event(1)], caller: alice)
        var subscription = try await log.subscribe(filter: EventFilter(), from: .now, heartbeat: .milliseconds(100), caller: alice).makeAsyncIterator()
        let first = try await subscription.next()
        guard case .heartbeat(let last, _) = first else {
            Issue.record("expected a heartbeat, got \(String(describing: first))")
            return
        }
        #expect(last == 0, "nothing delivered yet, and no start asked for")
        _ = try await log.publish([event(2)], caller: alice)
        guard case .event(let next) = try await subscription.next() else {
            Issue.record("expected the new event")
            return
        }
        #expect(next.sequence == 2)
    }

    @Test func readersSeeOnlyTheirOwnEventsUnlessAdmin() async throws {
        let log = makeLog()
        _ = try await log.publish([event(1)], caller: bob)
        _ = try await log.publish([event(2)], caller: alice)
        var mine = try await log.subscribe(filter: EventFilter(), from: .sequence(1), heartbeat: .milliseconds(100), caller: alice).makeAsyncIterator()
        guard case .event(let only) = try await mine.next() else { Issue.record("expected an event"); return }
        #expect(only.publisher == "alice")
        guard case .heartbeat = try await mine.next() else { Issue.record("expected a heartbeat"); return }
    }

    /// A non-admin's heartbeats tell where its own subscription is, never how far the log (everyone's events)
    /// has grown; an admin's tell the log's position.
    @Test func heartbeatsShowOnlyAdminsTheLogsPosition() async throws {
        let log = makeLog()
        _ = try await log.publish([event(1)], caller: alice)
        _ = try await log.publish((2...9).map { try event($0) }, caller: bob)
        func firstHeartbeat(_ caller: Principal, from start: EventLog.Start) async throws -> (events: [Int64], last: Int64?) {
            var items = try await log.subscribe(filter: EventFilter(), from: start, heartbeat: .milliseconds(100), caller: caller).makeAsyncIterator()
            var events: [Int64] = []
            while let item = try await items.next() {
                switch item {
                case .event(let event): events.append(event.sequence)
                case .heartbeat(let last, _): return (events, last)
                }
            }
            return (events, nil)
        }
        #expect(try await firstHeartbeat(alice, from: .sequence(1)) == ([1], 1))
        #expect(try await firstHeartbeat(alice, from: .sequence(3)) == ([], 2))
        #expect(try await firstHeartbeat(alice, from: .now) == ([], 0))
        #expect(try await firstHeartbeat(admin, from: .now) == ([], 9))
        #expect(try await firstHeartbeat(admin, from: .sequence(5)) == ([5, 6, 7, 8, 9], 9))
    }

    @Test func cancellingAWaitingSubscriberEndsIt() async throws {
        let log = makeLog()
        let subscription = try await log.subscribe(filter: EventFilter(), from: .now, heartbeat: .seconds(300), caller: alice)
        let consumer = Task {
            for try await _ in subscription {}
        }
        try await Task.sleep(for: .milliseconds(50))
        consumer.cancel()
        await #expect(throws: CancellationError.self) { try await consumer.value }
    }
}

/// The events of a stream, handed out one per call from any task.
private final class ScriptedStream: Sendable {
    private let items: Mutex<[Result<NewEvent, DomainError>]>
    let read = Atomic<Int>(0)

    init(_ items: [Result<NewEvent, DomainError>]) {
        self.items = Mutex(items)
    }

    func next() async throws -> Result<NewEvent, DomainError>? {
        let item = items.withLock { $0.isEmpty ? nil : $0.removeFirst() }
        if item != nil { read.add(1, ordering: .relaxed) }
        return item
    }
}

/// A store whose appends wait until released, counting the calls and the events in each.
private final class GatedEventStore: EventStore {
    let inner = MemoryEventStore()
    let batches = Mutex<[Int]>([])
    let gate = AsyncGate()

    func append(_ events: [PendingEvent]) async throws -> [AppendedEvent] {
        batches.withLock { $0.append(events.count) }
        await gate.wait()
        return try await inner.append(events)
    }
    func read(after sequence: Int64, limit: Int, filter: EventFilter) async throws -> EventBatch {
        try await inner.read(after: sequence, limit: limit, filter: filter)
    }
    func lastSequence() async throws -> Int64 { try await inner.lastSequence() }
    var appends: AppendSignal { inner.appends }
}

@Suite struct EventStreamIngestTests {
    @Test func everyEventIsAnsweredInOrderAndStoredInOrderWithRefusalsInPlace() async throws {
        let log = makeLog()
        var inputs: [Result<NewEvent, DomainError>] = []
        for i in 0..<400 {
            inputs.append(i % 37 == 5 ? .failure(DomainError.invalid("event.type", "is required")) : .success(try event(i, key: i % 50 == 0 ? "k\(i % 100)" : nil)))
        }
        let stream = ScriptedStream(inputs)
        let outcomes = Mutex<[EventLog.StreamOutcome]>([])
        try await log.publish(streamOf: { try await stream.next() }, caller: alice) { outcome in
            outcomes.withLock { $0.append(outcome) }
        }
        let answered = outcomes.withLock { $0 }
        #expect(answered.count == 400)
        var sequences: [Int64] = []
        for (i, outcome) in answered.enumerated() {
            switch outcome {
            case .stored(let appended):
                #expect(i % 37 != 5)
                #expect(appended.event.event.payload == Array("p\(i)".utf8) || appended.duplicate)
                if !appended.duplicate { sequences.append(appended.event.sequence) }
            case .refused(let error):
                #expect(i % 37 == 5)
                #expect(error == DomainError.invalid("event.type", "is required"))
            }
        }
        // Stored in the stream's order, one sequence each; keys "k0" and "k50" repeat every 100 events.
        #expect(sequences == Array(1...Int64(sequences.count)))
        #expect(sequences.count == 400 - 11 - 6)
    }

    @Test func eventsThatArriveDuringACommitGoInTheNextBatchAndReadingStopsWhenTheBatchIsFull() async throws {
        let store = GatedEventStore()
        let clock = FakeWallClock(UnixTime(seconds: 1_800_000_000))
        var settings = EventLog.Settings.defaults
        settings.maximumBatch = 10
        let log = EventLog(store: store, clock: clock, ids: MonotonicIDGenerator(clock: clock), pageTokens: PlainSealer(), settings: settings)
        let stream = ScriptedStream(try (0..<25).map { .success(try event($0)) })
        let answered = Atomic<Int>(0)
        let run = Task {
            try await log.publish(streamOf: { try await stream.next() }, caller: alice) { _ in answered.add(1, ordering: .relaxed) }
        }
        // While the first batch is being committed, the reader fills the next one (ten events) and stops there.
        while store.batches.withLock({ $0.isEmpty }) { await Task.yield() }
        let first = store.batches.withLock { $0[0] }
        while stream.read.load(ordering: .relaxed) < first + 10 { await Task.yield() }
        try await Task.sleep(for: .milliseconds(50))
        #expect(stream.read.load(ordering: .relaxed) == first + 10)
        #expect(answered.load(ordering: .relaxed) == 0)
        store.gate.open()
        try await run.value
        #expect(answered.load(ordering: .relaxed) == 25)
        let batches = store.batches.withLock { $0 }
        #expect(batches.allSatisfy { $0 <= 10 } && batches.reduce(0, +) == 25)
    }

    /// Large events: the read-ahead stops at the byte budget, not only at the event count (500 events of
    /// 1 MiB would otherwise wait in memory for one commit).
    @Test func readingAlsoStopsAtTheByteBudget() async throws {
        let store = GatedEventStore()
        let clock = FakeWallClock(UnixTime(seconds: 1_800_000_000))
        var settings = EventLog.Settings.defaults
        settings.maximumStreamBatchBytes = 2 << 20
        let log = EventLog(store: store, clock: clock, ids: MonotonicIDGenerator(clock: clock), pageTokens: PlainSealer(), settings: settings)
        let big = try (0..<8).map { i -> Result<NewEvent, DomainError> in
            .success(try NewEvent(type: "Big", aggregateID: "a", payload: Array(repeating: UInt8(i), count: 1 << 20)))
        }
        let stream = ScriptedStream(big)
        let run = Task { try await log.publish(streamOf: { try await stream.next() }, caller: alice) { _ in } }
        while store.batches.withLock({ $0.isEmpty }) { await Task.yield() }
        let first = store.batches.withLock { $0[0] }
        while stream.read.load(ordering: .relaxed) < first + 2 { await Task.yield() }
        try await Task.sleep(for: .milliseconds(50))
        #expect(stream.read.load(ordering: .relaxed) == first + 2)
        store.gate.open()
        try await run.value
        #expect(store.batches.withLock { $0 }.allSatisfy { $0 <= 2 })
    }

    @Test func aStoreFailureEndsTheStreamAndStopsTheReader() async throws {
        struct Broken: Error {}
        let store = FailingEventStore(error: Broken())
        let clock = FakeWallClock(UnixTime(seconds: 1_800_000_000))
        let log = EventLog(store: store, clock: clock, ids: MonotonicIDGenerator(clock: clock), pageTokens: PlainSealer())
        let stream = ScriptedStream(try (0..<10_000).map { .success(try event($0)) })
        await #expect(throws: Broken.self) {
            try await log.publish(streamOf: { try await stream.next() }, caller: alice) { _ in }
        }
        #expect(stream.read.load(ordering: .relaxed) < 10_000)
    }
}

private struct FailingEventStore: EventStore {
    let error: any Error
    let appends = AppendSignal()
    func append(_ events: [PendingEvent]) async throws -> [AppendedEvent] { throw error }
    func read(after sequence: Int64, limit: Int, filter: EventFilter) async throws -> EventBatch { throw error }
    func lastSequence() async throws -> Int64 { 0 }
}

/// Closed until opened; then every waiter goes on.
private final class AsyncGate: Sendable {
    private let state = Mutex<(open: Bool, waiters: [CheckedContinuation<Void, Never>])>((false, []))

    func wait() async {
        await withCheckedContinuation { continuation in
            let go = state.withLock { s -> Bool in
                if s.open { return true }
                s.waiters.append(continuation)
                return false
            }
            if go { continuation.resume() }
        }
    }

    func open() {
        let waiters = state.withLock { s -> [CheckedContinuation<Void, Never>] in
            s.open = true
            defer { s.waiters = [] }
            return s.waiters
        }
        waiters.forEach { $0.resume() }
    }
}
