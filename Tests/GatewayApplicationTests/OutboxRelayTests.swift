import GatewayApplication
import MemoryAdapters
import Synchronization
import Testing

/// A destination that answers from a rule per event and records what it was sent.
final class RecordingPublisher: EventPublisher {
    let destination = "topic"
    private let sent = Mutex<[Int64]>([])
    private let rule: Mutex<@Sendable (RecordedEvent) -> PublishOutcome>

    init(_ rule: @escaping @Sendable (RecordedEvent) -> PublishOutcome = { _ in .published }) {
        self.rule = Mutex(rule)
    }

    var sequences: [Int64] { sent.withLock { $0 } }

    func answer(_ rule: @escaping @Sendable (RecordedEvent) -> PublishOutcome) { self.rule.withLock { $0 = rule } }

    func publish(_ events: [RecordedEvent]) async throws -> [PublishOutcome] {
        let rule = self.rule.withLock { $0 }
        sent.withLock { $0 += events.map(\.sequence) }
        return events.map(rule)
    }
}

@Suite struct OutboxRelayTests {
    let clock = FakeWallClock(UnixTime(seconds: 1_800_000_000))

    func append(_ store: MemoryEventStore, _ count: Int) async throws {
        _ = try await store.append((0..<count).map { i in
            PendingEvent(
                id: MonotonicIDGenerator(clock: clock).ulid(), event: try NewEvent(type: "T", aggregateID: "a", payload: [UInt8(i % 256)]),
                publisher: "p", recordedAt: clock.now()
            )
        })
    }

    func relay(_ store: MemoryEventStore, _ cursors: MemoryOutboxCursors, _ publisher: RecordingPublisher, owner: String = "me", rejected: Steps? = nil) -> OutboxRelay {
        var settings = OutboxRelay.Settings.defaults
        settings.batch = 25
        settings.idleWait = .milliseconds(10)
        return OutboxRelay(
            store: store, cursors: cursors, publisher: publisher, owner: owner, settings: settings,
            onRejected: { event, reason in rejected?.append("\(event.sequence): \(reason)") }
        )
    }

    @Test func everyEventGoesOutInOrderAndTheCursorFollows() async throws {
        let (store, cursors, publisher) = (MemoryEventStore(), MemoryOutboxCursors(clock: clock), RecordingPublisher())
        try await append(store, 60)
        let relay = relay(store, cursors, publisher)
        while try await relay.round() == .published {}
        #expect(publisher.sequences == Array(1...60))
        #expect(try await cursors.acquire(destination: "topic", owner: "me", leaseSeconds: 30) == 60)
        // A restarted relay (same cursors) goes on from there.
        try await append(store, 3)
        let restarted = self.relay(store, cursors, publisher)
        #expect(try await restarted.round() == .published)
        #expect(publisher.sequences.suffix(3) == [61, 62, 63])
        #expect(try await restarted.round() == .caughtUp)
    }

    @Test func anEventNotTakenYetStopsTheCursorBeforeItAndGoesAgain() async throws {
        let (store, cursors) = (MemoryEventStore(), MemoryOutboxCursors(clock: clock))
        let publisher = RecordingPublisher { $0.sequence == 7 ? .retry("throttled") : .published }
        try await append(store, 12)
        let relay = relay(store, cursors, publisher)
        await #expect(throws: OutboxRelay.RelayInterrupted.self) { try await relay.round() }
        #expect(try await cursors.acquire(destination: "topic", owner: "me", leaseSeconds: 30) == 6)
        publisher.answer { _ in .published }
        #expect(try await relay.round() == .published)
        // 7 went again, and so did 8 to 10, which had gone with it (at least once: consumers tell by the id).
        #expect(publisher.sequences == Array(1...10) + Array(7...12))
        #expect(try await cursors.acquire(destination: "topic", owner: "me", leaseSeconds: 30) == 12)
    }

    @Test func anEventRefusedForGoodIsReportedAndPassed() async throws {
        let (store, cursors) = (MemoryEventStore(), MemoryOutboxCursors(clock: clock))
        let publisher = RecordingPublisher { $0.sequence == 2 ? .rejected("too large") : .published }
        let rejected = Steps()
        try await append(store, 3)
        #expect(try await relay(store, cursors, publisher, rejected: rejected).round() == .published)
        #expect(rejected.list == ["2: too large"])
        #expect(try await cursors.acquire(destination: "topic", owner: "me", leaseSeconds: 30) == 3)
    }

    @Test func onlyTheLeaseholderPublishesAndAnotherTakesOverWhenItLapses() async throws {
        let (store, cursors) = (MemoryEventStore(), MemoryOutboxCursors(clock: clock))
        let (first, second) = (RecordingPublisher(), RecordingPublisher())
        try await append(store, 5)
        #expect(try await relay(store, cursors, first, owner: "a").round() == .published)
        try await append(store, 5)
        #expect(try await relay(store, cursors, second, owner: "b").round() == .notLeaseholder)
        clock.advance(seconds: 31)
        #expect(try await relay(store, cursors, second, owner: "b").round() == .published)
        #expect(first.sequences == Array(1...5) && second.sequences == Array(6...10))
    }
}

/// What happened, in order, across tasks.
final class Steps: Sendable {
    private let steps = Mutex<[String]>([])
    var list: [String] { steps.withLock { $0 } }
    func append(_ step: String) { steps.withLock { $0.append(step) } }
}
