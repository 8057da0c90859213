import GatewayApplication
import Logging
import ServiceLifecycle

/// Runs the outbox relay (``OutboxRelay``) as a service of the gateway's group: it relays the event log to
/// its destination until the gateway shuts down.
public struct EventRelayService: Service {
    private let relay: OutboxRelay

    public init(store: any EventStore, cursors: any OutboxCursors, publisher: any EventPublisher, owner: String, logger: Logger) {
        let destination = publisher.destination
        relay = OutboxRelay(
            store: store, cursors: cursors, publisher: publisher, owner: owner,
            onRejected: { event, reason in
                logger.error("event not published: the destination refuses it for good; it stays in the log", metadata: [
                    "event.sequence": "\(event.sequence)", "event.id": "\(event.id)", "event.type": "\(event.event.type)",
                    "outbox.destination": "\(destination)", "reason": "\(reason)",
                ])
            },
            onFailure: { error in
                logger.warning("outbox relay paused; it tries again", metadata: [
                    "outbox.destination": "\(destination)", "error": "\(error)",
                ])
            }
        )
    }

    public func run() async throws {
        await cancelWhenGracefulShutdown {
            await relay.run()
        }
    }
}
