import GatewayApplication
import Synchronization

/// Outbox cursors in process memory: the reference behaviour of `OutboxCursors`, for unit tests.
public final class MemoryOutboxCursors: OutboxCursors {
    private struct Cursor {
        var publishedThrough: Int64 = 0
        var owner: String
        var leaseUntil: Int64
    }

    private let cursors = Mutex<[String: Cursor]>([:])
    private let clock: any WallClock

    public init(clock: any WallClock) {
        self.clock = clock
    }

    public func acquire(destination: String, owner: String, leaseSeconds: Int64) async throws -> Int64? {
        let now = clock.now().seconds
        return cursors.withLock { cursors in
            var cursor = cursors[destination] ?? Cursor(owner: owner, leaseUntil: 0)
            guard cursor.owner == owner || cursor.leaseUntil < now else { return nil }
            cursor.owner = owner
            cursor.leaseUntil = now + leaseSeconds
            cursors[destination] = cursor
            return cursor.publishedThrough
        }
    }

    public func advance(destination: String, owner: String, to sequence: Int64) async throws {
        try cursors.withLock { cursors in
            guard var cursor = cursors[destination], cursor.owner == owner else {
                throw DomainError(.failedPrecondition, "the outbox lease of \(destination) passed to another process")
            }
            cursor.publishedThrough = max(cursor.publishedThrough, sequence)
            cursors[destination] = cursor
        }
    }
}
