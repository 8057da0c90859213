/// Where the event log is relayed to (SNS, webhooks): the outbox's consumer.
public protocol EventPublisher: Sendable {
    /// A name for the destination, the key of its cursor (e.g. the topic's ARN).
    var destination: String { get }

    /// Publishes `events`, in order, and says for each whether the destination acknowledged it.
    func publish(_ events: [RecordedEvent]) async throws -> [PublishOutcome]
}

/// What became of one event sent to a publisher.
public enum PublishOutcome: Sendable, Hashable {
    /// Acknowledged: it will be delivered.
    case published
    /// Refused for a reason that may pass (throttling, an outage): send it again later.
    case retry(String)
    /// Refused for good (too large, invalid): sending it again cannot help.
    case rejected(String)
}

/// How far the outbox has been relayed to each destination, and which process relays it: several gateways
/// share one log, and only the holder of a destination's lease publishes to it, so an event is not sent twice
/// by two processes.
public protocol OutboxCursors: Sendable {
    /// Takes or renews the lease on `destination` for `owner` until `leaseSeconds` from now and returns the
    /// last sequence number published; nil while another owner holds an unexpired lease.
    func acquire(destination: String, owner: String, leaseSeconds: Int64) async throws -> Int64?

    /// Records that everything up to `sequence` was published; only while `owner` holds the lease (else it
    /// throws `.failedPrecondition`: another process took over, and will publish from the recorded cursor).
    func advance(destination: String, owner: String, to sequence: Int64) async throws
}
