/// An event the application is about to append: everything but the sequence number, which the store assigns.
public struct PendingEvent: Sendable, Hashable {
    public var id: ULID
    public var event: NewEvent
    public var publisher: String
    public var recordedAt: UnixTime

    public init(id: ULID, event: NewEvent, publisher: String, recordedAt: UnixTime) {
        self.id = id
        self.event = event
        self.publisher = publisher
        self.recordedAt = recordedAt
    }
}

/// One appended event, or the earlier event its idempotency key matched.
public struct AppendedEvent: Sendable, Hashable {
    public var event: RecordedEvent
    public var duplicate: Bool

    public init(event: RecordedEvent, duplicate: Bool) {
        self.event = event
        self.duplicate = duplicate
    }
}

/// Events read from the log, and how far the read looked: readers continue after `scannedThrough` even when
/// the filter matched nothing up to it.
public struct EventBatch: Sendable, Hashable {
    public var events: [RecordedEvent]
    public var scannedThrough: Int64

    public init(events: [RecordedEvent], scannedThrough: Int64) {
        self.events = events
        self.scannedThrough = scannedThrough
    }
}

/// The durable, totally ordered event log (the outbox). An append is acknowledged only once it is stored.
/// Sequence numbers start at 1 and are assigned in commit order, so a reader that has seen sequence N has
/// seen every committed event up to N.
public protocol EventStore: Sendable {
    /// Appends all events or none, in order. An event whose idempotency key its publisher used before is
    /// not stored again: the earlier event comes back with `duplicate` set.
    func append(_ events: [PendingEvent]) async throws -> [AppendedEvent]

    /// Up to `limit` events with sequence numbers above `after` that match `filter`, ascending.
    func read(after: Int64, limit: Int, filter: EventFilter) async throws -> EventBatch

    /// The highest sequence number stored (0 for an empty log).
    func lastSequence() async throws -> Int64

    /// Wakes subscribers in this process when events are appended through this store.
    var appends: AppendSignal { get }
}

/// Turns a domain event into the event that is stored (the payload encoding is the server's business).
public protocol DomainEventEncoder: Sendable {
    func encode(_ event: DomainEvent) throws -> NewEvent
}

extension DomainEventEncoder {
    /// The log entry for `event`, published by the account it belongs to (`DomainEvent.owner`).
    func pending(_ event: DomainEvent, id: ULID, at time: UnixTime) throws -> PendingEvent {
        PendingEvent(id: id, event: try encode(event), publisher: event.owner, recordedAt: time)
    }
}
