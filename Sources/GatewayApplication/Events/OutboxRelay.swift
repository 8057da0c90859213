/// Drains the event log (the outbox) to a publisher, in order: an event counts as published only once the
/// destination acknowledged it, and the cursor moves only over a run of acknowledged events, so a crash, a
/// restart or an outage of the destination loses nothing (unpublished events go out after it). One process
/// at a time holds the destination's lease; if it dies, another takes over when the lease expires.
///
/// Delivery is at least once: events acknowledged after a refused one are sent again with it, and a process
/// that dies between an acknowledgement and recording it leaves them to be sent again. Each event carries
/// its id so consumers can tell a repeat. Events the destination refuses for good (`rejected`) are skipped
/// with a report through `onRejected`; they stay in the log.
public struct OutboxRelay: Sendable {
    public struct Settings: Sendable {
        /// Events read from the log per round.
        public var batch = 100
        /// Events sent to the publisher at once.
        public var publishBatch = 10
        public var leaseSeconds: Int64 = 30
        /// How long to wait for new events before looking again, and between attempts to take the lease.
        public var idleWait: Duration = .seconds(1)
        /// Backoff after a failed round: doubles up to `maximumBackoff`.
        public var minimumBackoff: Duration = .milliseconds(200)
        public var maximumBackoff: Duration = .seconds(30)

        public init() {}

        public static var defaults: Settings { Settings() }
    }

    private let store: any EventStore
    private let cursors: any OutboxCursors
    private let publisher: any EventPublisher
    private let owner: String
    private let settings: Settings
    private let onRejected: @Sendable (RecordedEvent, String) -> Void
    private let onFailure: @Sendable (any Error) -> Void

    /// `owner` names this process (unique among the gateways sharing the log).
    public init(
        store: any EventStore, cursors: any OutboxCursors, publisher: any EventPublisher, owner: String,
        settings: Settings = .defaults, onRejected: @escaping @Sendable (RecordedEvent, String) -> Void = { _, _ in },
        onFailure: @escaping @Sendable (any Error) -> Void = { _ in }
    ) {
        self.store = store
        self.cursors = cursors
        self.publisher = publisher
        self.owner = owner
        self.settings = settings
        self.onRejected = onRejected
        self.onFailure = onFailure
    }

    /// Relays until the task is cancelled.
    public func run() async {
        var backoff = settings.minimumBackoff
        while !Task.isCancelled {
            do {
                if try await round() == .notLeaseholder { try await Task.sleep(for: settings.idleWait) }
                backoff = settings.minimumBackoff
            } catch is CancellationError {
                return
            } catch {
                onFailure(error)
                try? await Task.sleep(for: backoff * Double.random(in: 0.5...1))
                backoff = min(backoff * 2, settings.maximumBackoff)
            }
        }
    }

    public enum Round: Sendable, Hashable {
        case published
        /// Nothing to publish: the round waited for the next append (or `idleWait`).
        case caughtUp
        /// Another process holds the lease.
        case notLeaseholder
    }

    /// One round: takes the lease, publishes what follows the cursor, records how far it got.
    @discardableResult
    public func round() async throws -> Round {
        guard let cursor = try await cursors.acquire(destination: publisher.destination, owner: owner, leaseSeconds: settings.leaseSeconds) else {
            return .notLeaseholder
        }
        let batch = try await store.read(after: cursor, limit: settings.batch, filter: EventFilter())
        guard !batch.events.isEmpty else {
            await store.appends.wait(beyond: cursor, timeout: settings.idleWait)
            return .caughtUp
        }
        var published = cursor
        for start in stride(from: 0, to: batch.events.count, by: settings.publishBatch) {
            let events = Array(batch.events[start..<min(batch.events.count, start + settings.publishBatch)])
            let outcomes = try await publisher.publish(events)
            for (event, outcome) in zip(events, outcomes) {
                switch outcome {
                case .published:
                    published = event.sequence
                case .rejected(let reason):
                    onRejected(event, reason)
                    published = event.sequence
                case .retry(let reason):
                    // The cursor stops before it: this event and the ones after it go again next round.
                    if published > cursor { try await cursors.advance(destination: publisher.destination, owner: owner, to: published) }
                    throw RelayInterrupted(event: event.sequence, reason: reason)
                }
            }
            try await cursors.advance(destination: publisher.destination, owner: owner, to: published)
        }
        return .published
    }

    /// A publish round stopped at an event the destination did not take yet.
    public struct RelayInterrupted: Error, CustomStringConvertible {
        public var event: Int64
        public var reason: String
        public var description: String { "event \(event) was not published yet: \(reason)" }
    }
}
