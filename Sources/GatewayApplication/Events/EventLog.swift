/// The event use cases: publish, page through, and subscribe. Any caller may publish; callers read the
/// events they published (including the domain events their own actions caused), admins read all.
public struct EventLog: Sendable {
    public struct Settings: Sendable {
        public var maximumBatch = 500
        /// Payload bytes a stream may have read ahead of its commit (``publish(streamOf:caller:answer:)``).
        public var maximumStreamBatchBytes = 4 << 20
        /// Types or aggregate ids one filter may name.
        public var maximumFilterEntries = 100
        public var defaultHeartbeat: Duration = .seconds(15)
        public var minimumHeartbeat: Duration = .milliseconds(100)
        public var maximumHeartbeat: Duration = .seconds(300)

        public static var defaults: Settings { Settings() }
    }

    private let store: any EventStore
    private let clock: any WallClock
    private let ids: any IDGenerator
    private let pageTokens: any TokenSealer
    let settings: Settings

    public init(store: any EventStore, clock: any WallClock, ids: any IDGenerator, pageTokens: any TokenSealer, settings: Settings = .defaults) {
        self.store = store
        self.clock = clock
        self.ids = ids
        self.pageTokens = pageTokens
        self.settings = settings
    }

    /// Stores `events` (all or none) and returns them with their ids and sequence numbers.
    public func publish(_ events: [NewEvent], caller: Principal) async throws -> [AppendedEvent] {
        guard !events.isEmpty else { throw DomainError.invalid("events", "must not be empty") }
        guard events.count <= settings.maximumBatch else {
            throw DomainError.invalid("events", "holds more than \(settings.maximumBatch) events")
        }
        let now = clock.now()
        return try await store.append(events.map { PendingEvent(id: ids.ulid(), event: $0, publisher: caller.uid, recordedAt: now) })
    }

    /// Stored events after `afterSequence` that match `filter`, a page at a time.
    public func list(
        filter: EventFilter, afterSequence: Int64, pageSize: Int32, pageToken: String, caller: Principal
    ) async throws -> UserAccounts.Page<RecordedEvent> {
        let limit = try PageSize.resolve(pageSize)
        guard afterSequence >= 0 else { throw DomainError.invalid("after_sequence", "must not be negative") }
        let filter = try visible(filter, to: caller)
        var after = afterSequence
        if !pageToken.isEmpty {
            let position = try PageToken.open(pageToken, listing: .events, flags: 0, with: pageTokens)
            guard position.high == 0, position.low <= UInt64(Int64.max) else {
                throw DomainError.invalid("page_token", "is not a page token this server issued, or was altered")
            }
            after = Int64(position.low)
        }
        let batch = try await store.read(after: after, limit: limit, filter: filter)
        let next = batch.events.count == limit
            ? PageToken(listing: .events, flags: 0, after: ULID(high: 0, low: UInt64(batch.scannedThrough)), scope: [])
                .sealed(with: pageTokens)
            : nil
        return .init(items: batch.events, nextPageToken: next)
    }

    /// Where a subscription starts.
    public enum Start: Sendable {
        /// Every matching event from this sequence number on (catch-up, then live).
        case sequence(Int64)
        /// Only events appended after the subscription starts.
        case now
    }

    /// Stored events from `start`, then new ones as they are appended, each exactly once and in order, with
    /// heartbeats while nothing matches for `heartbeat`.
    public func subscribe(filter: EventFilter, from start: Start, heartbeat: Duration?, caller: Principal) async throws -> EventSubscription {
        let heartbeat = heartbeat ?? settings.defaultHeartbeat
        guard heartbeat >= settings.minimumHeartbeat, heartbeat <= settings.maximumHeartbeat else {
            throw DomainError.invalid("heartbeat_interval", "must be between \(settings.minimumHeartbeat) and \(settings.maximumHeartbeat)")
        }
        let cursor: Int64
        // What heartbeats may tell a non-admin: positions of this subscription, never the log's own (how far
        // it has grown says how busy everyone else is).
        let shown: Int64
        switch start {
        case .sequence(let first):
            guard first >= 1 else { throw DomainError.invalid("from_sequence", "must be at least 1") }
            cursor = first - 1
            shown = cursor
        case .now:
            cursor = try await store.lastSequence()
            shown = 0
        }
        return EventSubscription(
            store: store, filter: try visible(filter, to: caller), cursor: cursor, heartbeat: heartbeat, clock: clock,
            batch: settings.maximumBatch, showsLogPosition: caller.isAdmin ? nil : shown
        )
    }

    private func visible(_ filter: EventFilter, to caller: Principal) throws(DomainError) -> EventFilter {
        guard filter.types.count <= settings.maximumFilterEntries else {
            throw .invalid("filter.types", "names more than \(settings.maximumFilterEntries) types")
        }
        guard filter.aggregateIDs.count <= settings.maximumFilterEntries else {
            throw .invalid("filter.aggregate_ids", "names more than \(settings.maximumFilterEntries) aggregates")
        }
        var filter = filter
        if !caller.isAdmin { filter.publisher = caller.uid }
        return filter
    }
}

/// A subscription, pulled by its consumer: nothing is read ahead of what the consumer takes, so a slow
/// subscriber costs one batch of memory, not a backlog.
public struct EventSubscription: AsyncSequence, Sendable {
    public enum Item: Sendable, Hashable {
        case event(RecordedEvent)
        /// Nothing matched for a heartbeat interval. `lastSequence`: resuming after it loses and repeats
        /// nothing. For admins, the log's last sequence number then; for others, the last sequence delivered
        /// (or the one before the start they asked for; 0 when they asked for none and nothing came yet).
        case heartbeat(lastSequence: Int64, time: UnixTime)
    }

    let store: any EventStore
    let filter: EventFilter
    let cursor: Int64
    let heartbeat: Duration
    let clock: any WallClock
    let batch: Int
    /// Nil: heartbeats show how far the log was scanned (admins). Else where they start for this caller.
    let showsLogPosition: Int64?

    public func makeAsyncIterator() -> Iterator {
        Iterator(subscription: self, cursor: cursor, delivered: showsLogPosition)
    }

    public struct Iterator: AsyncIteratorProtocol {
        let subscription: EventSubscription
        /// Everything up to here has been delivered or skipped by the filter.
        var cursor: Int64
        /// What a non-admin's heartbeat shows: the last sequence delivered (nil for admins).
        var delivered: Int64?
        /// Read but not yet delivered, last first (so delivering is a `popLast`).
        var buffered: [RecordedEvent] = []

        public mutating func next() async throws -> Item? {
            var waited: Duration = .zero
            while true {
                try Task.checkCancellation()
                if let event = buffered.popLast() {
                    if delivered != nil { delivered = event.sequence }
                    return .event(event)
                }
                let batch = try await subscription.store.read(after: cursor, limit: subscription.batch, filter: subscription.filter)
                cursor = Swift.max(cursor, batch.scannedThrough)
                if !batch.events.isEmpty {
                    buffered = batch.events.reversed()
                    continue
                }
                if waited >= subscription.heartbeat {
                    return .heartbeat(lastSequence: delivered ?? cursor, time: subscription.clock.now())
                }
                let started = ContinuousClock.now
                await subscription.store.appends.wait(beyond: cursor, timeout: subscription.heartbeat - waited)
                waited += ContinuousClock.now - started
            }
        }
    }
}
