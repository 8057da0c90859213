import GatewayApplication
import Testing

/// What every `EventStore` promises, and that user changes record their events atomically.
@Suite struct EventStoreContractTests {
    static func pending(_ n: Int, type: String = "Thing", aggregate: String? = nil, key: String? = nil, publisher: String = "alice") throws -> PendingEvent {
        PendingEvent(
            id: ULID(milliseconds: Fixture.epoch + UInt64(n), randomHigh: 0xE7, randomLow: UInt64(n)),
            event: try NewEvent(
                type: type, aggregateID: aggregate ?? "agg-\(n % 3)", payload: Array("payload \(n)".utf8), contentType: "text/plain",
                attributes: n % 2 == 0 ? ["n": "\(n)", "parity": "even", "empty": ""] : [:], idempotencyKey: key,
                reservedTypeAllowed: true
            ),
            publisher: publisher, recordedAt: Fixture.time(n)
        )
    }

    @Test(arguments: Adapter.allCases)
    func appendAssignsConsecutiveSequencesAndReadsBackExactly(_ adapter: Adapter) async throws {
        try await adapter.withStores { _, events in
            #expect(try await events.lastSequence() == 0)
            let batch = try (1...5).map { try Self.pending($0) }
            let appended = try await events.append(batch)
            #expect(appended.map(\.event.sequence) == [1, 2, 3, 4, 5])
            #expect(appended.allSatisfy { !$0.duplicate })
            let read = try await events.read(after: 0, limit: 10, filter: EventFilter())
            #expect(read.events == appended.map(\.event))
            #expect(read.events.map(\.event) == batch.map(\.event))
            #expect(read.scannedThrough == 5)
            #expect(try await events.lastSequence() == 5)
        }
    }

    @Test(arguments: Adapter.allCases)
    func idempotencyKeysArePerPublisher(_ adapter: Adapter) async throws {
        try await adapter.withStores { _, events in
            let first = try await events.append([Self.pending(1, key: "k")])[0]
            let again = try await events.append([Self.pending(2, key: "k"), Self.pending(3)])
            #expect(again[0].duplicate && again[0].event == first.event)
            #expect(!again[1].duplicate && again[1].event.sequence == 2)
            let other = try await events.append([Self.pending(4, key: "k", publisher: "bob")])[0]
            #expect(!other.duplicate && other.event.sequence == 3)
        }
    }

    @Test(arguments: Adapter.allCases)
    func filteredReadsPageAndSayHowFarTheyScanned(_ adapter: Adapter) async throws {
        try await adapter.withStores { _, events in
            _ = try await events.append((1...30).map { try Self.pending($0, type: $0 % 5 == 0 ? "Rare" : "Common") })
            _ = try await events.append([Self.pending(31, type: "Rare", publisher: "bob")])
            let rare = EventFilter(types: ["Rare"], publisher: "alice")
            let firstPage = try await events.read(after: 0, limit: 2, filter: rare)
            #expect(firstPage.events.map(\.sequence) == [5, 10])
            #expect(firstPage.scannedThrough == 10)
            let rest = try await events.read(after: 10, limit: 10, filter: rare)
            #expect(rest.events.map(\.sequence) == [15, 20, 25, 30])
            #expect(rest.scannedThrough == 31, "a short page scanned to the end of the log")
            let byAggregate = try await events.read(after: 0, limit: 100, filter: EventFilter(types: ["Common"], aggregateIDs: ["agg-1", "agg-2"]))
            #expect(byAggregate.events.allSatisfy { $0.event.type == "Common" && $0.event.aggregateID != "agg-0" })
            #expect(byAggregate.events.count == 16)
            let nothing = try await events.read(after: 31, limit: 10, filter: EventFilter())
            #expect(nothing.events.isEmpty && nothing.scannedThrough == 31)
        }
    }

    @Test(arguments: Adapter.allCases)
    func appendsWakeWaitingSubscribers(_ adapter: Adapter) async throws {
        try await adapter.withStores { _, events in
            async let woke = events.appends.wait(beyond: 0, timeout: .seconds(10))
            try await Task.sleep(for: .milliseconds(20))
            _ = try await events.append([Self.pending(1)])
            #expect(await woke)
            #expect(await events.appends.wait(beyond: 1, timeout: .milliseconds(20)) == false)
        }
    }

    @Test(arguments: Adapter.allCases)
    func userChangesAppendTheirEventsOnlyWhenTheyCommit(_ adapter: Adapter) async throws {
        try await adapter.withStores { users, events in
            let ada = try Fixture.user(1, email: "ada@example.com")
            try await users.create(ada, recording: [Self.pending(1, type: "UserCreated")])
            // Refused changes record nothing.
            await #expect(throws: DomainError.self) {
                try await users.create(Fixture.user(2, email: "ADA@example.com"), recording: [Self.pending(2, type: "UserCreated")])
            }
            await #expect(throws: DomainError.self) {
                try await users.update(ada, expectedVersion: 9, recording: [Self.pending(3, type: "UserUpdated")])
            }
            await #expect(throws: DomainError.self) {
                _ = try await users.delete(id: Fixture.userID(5), expectedVersion: nil, recording: [Self.pending(4, type: "UserDeleted")])
            }
            var changed = ada
            changed.version = 2
            try await users.update(changed, expectedVersion: 1, recording: [Self.pending(5, type: "UserUpdated")])
            _ = try await users.delete(id: ada.id, expectedVersion: 2, recording: [Self.pending(6, type: "UserDeleted")])
            let log = try await events.read(after: 0, limit: 10, filter: EventFilter())
            #expect(log.events.map(\.event.type) == ["UserCreated", "UserUpdated", "UserDeleted"])
            #expect(log.events.map(\.sequence) == [1, 2, 3])
        }
    }
}
