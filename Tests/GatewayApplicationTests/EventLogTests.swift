import GatewayApplication
import MemoryAdapters
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
