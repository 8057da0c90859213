import GatewayApplication
import Synchronization

/// The event log in process memory: the reference behaviour of `EventStore`, for unit tests.
public final class MemoryEventStore: EventStore {
    private struct State {
        var events: [RecordedEvent] = []
        var byIdempotencyKey: [String: [String: Int]] = [:]  // publisher → key → index
    }

    private let state = Mutex(State())
    public let appends = AppendSignal()

    public init() {}

    public func append(_ events: [PendingEvent]) async throws -> [AppendedEvent] {
        let (appended, last) = appendNow(events)
        appends.appended(through: last)
        return appended
    }

    /// Appends under the store's lock; `MemoryUserStore` calls this inside its own critical section so a
    /// change and its domain events land together. The caller signals `appends` afterwards.
    func appendNow(_ events: [PendingEvent]) -> ([AppendedEvent], Int64) {
        state.withLock { state in
            var results: [AppendedEvent] = []
            var batchKeys: [String: AppendedEvent] = [:]
            for pending in events {
                if let key = pending.event.idempotencyKey {
                    if let index = state.byIdempotencyKey[pending.publisher]?[key] {
                        results.append(AppendedEvent(event: state.events[index], duplicate: true))
                        continue
                    }
                    if let earlier = batchKeys[key] {
                        results.append(AppendedEvent(event: earlier.event, duplicate: true))
                        continue
                    }
                }
                let recorded = RecordedEvent(
                    id: pending.id, sequence: Int64(state.events.count + 1), event: pending.event,
                    publisher: pending.publisher, recordedAt: pending.recordedAt
                )
                state.events.append(recorded)
                if let key = pending.event.idempotencyKey {
                    state.byIdempotencyKey[pending.publisher, default: [:]][key] = state.events.count - 1
                    batchKeys[key] = AppendedEvent(event: recorded, duplicate: false)
                }
                results.append(AppendedEvent(event: recorded, duplicate: false))
            }
            return (results, Int64(state.events.count))
        }
    }

    public func read(after: Int64, limit: Int, filter: EventFilter) async throws -> EventBatch {
        state.withLock { state in
            var found: [RecordedEvent] = []
            var scanned = max(after, 0)
            for event in state.events.dropFirst(Int(clamping: max(after, 0))) {
                guard found.count < limit else { break }
                scanned = event.sequence
                if filter.matches(event) { found.append(event) }
            }
            return EventBatch(events: found, scannedThrough: scanned)
        }
    }

    public func lastSequence() async throws -> Int64 {
        state.withLock { Int64($0.events.count) }
    }
}
