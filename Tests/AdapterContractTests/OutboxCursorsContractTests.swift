import GatewayApplication
import Testing

/// The `OutboxCursors` contract, run against every adapter.
@Suite("OutboxCursors contract")
struct OutboxCursorsContractTests {
    @Test(arguments: Adapter.allCases)
    func oneOwnerAtATimeMovesTheCursor(_ adapter: Adapter) async throws {
        try await adapter.withOutbox { cursors, clock in
            #expect(try await cursors.acquire(destination: "topic", owner: "a", leaseSeconds: 30) == 0)
            #expect(try await cursors.acquire(destination: "topic", owner: "b", leaseSeconds: 30) == nil, "a holds the lease")
            #expect(try await cursors.acquire(destination: "other", owner: "b", leaseSeconds: 30) == 0, "destinations are separate")
            try await cursors.advance(destination: "topic", owner: "a", to: 7)
            #expect(try await cursors.acquire(destination: "topic", owner: "a", leaseSeconds: 30) == 7)
            let refused = await #expect(throws: DomainError.self) { try await cursors.advance(destination: "topic", owner: "b", to: 9) }
            #expect(refused?.code == .failedPrecondition)

            // a stops renewing: b takes over where a got to, and a can no longer move the cursor.
            clock.advance(seconds: 31)
            #expect(try await cursors.acquire(destination: "topic", owner: "b", leaseSeconds: 30) == 7)
            await #expect(throws: DomainError.self) { try await cursors.advance(destination: "topic", owner: "a", to: 8) }
            try await cursors.advance(destination: "topic", owner: "b", to: 12)
            #expect(try await cursors.acquire(destination: "topic", owner: "a", leaseSeconds: 30) == nil)
            clock.advance(seconds: 31)
            #expect(try await cursors.acquire(destination: "topic", owner: "a", leaseSeconds: 30) == 12)
        }
    }
}
