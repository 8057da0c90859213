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

    /// Runs `change` inside `lock`'s critical section and, when it succeeds, appends `pending` before the lock
    /// is released, so a change and its domain events land together; then wakes subscribers. The memory user
    /// and file stores make every change through this.
    func commit<State: Sendable, T: Sendable>(
        _ pending: [PendingEvent], in lock: borrowing Mutex<State>, _ change: (inout State) throws -> T
    ) throws -> T {
        let (result, last) = try lock.withLock { state in
            let result = try change(&state)
            return (result, pending.isEmpty ? 0 : appendNow(pending).1)
        }
        appends.appended(through: last)
        return result
    }

    /// Appends under the store's lock; the caller signals `appends` afterwards.
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
