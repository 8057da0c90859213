import GatewayApplication
import GatewayProtos
import RPCCore
import StandardProtos
import Synchronization

/// `gateway.event.v1.EventService` over the ``EventLog`` use cases.
public struct EventServiceImplementation: Gateway_Event_V1_EventService.ServiceProtocol {
    private let log: EventLog
    private let subscriberStall: Duration

    /// `subscriberStall`: how long a subscriber may leave an event unread (its stream's buffers full) before
    /// its call ends with RESOURCE_EXHAUSTED.
    public init(log: EventLog, subscriberStall: Duration = .seconds(60)) {
        self.log = log
        self.subscriberStall = subscriberStall
    }

    public func publishEvent(_ request: Gateway_Event_V1_PublishEventRequest, context: ServerContext) async throws -> Gateway_Event_V1_PublishEventResponse {
        guard let event = request.event else { throw DomainError.invalid("event", "is required") }
        let appended = try await log.publish([try NewEvent(event, field: "event.")], caller: context.caller())
        return Gateway_Event_V1_PublishEventResponse(appended[0])
    }

    public func publishEvents(_ request: Gateway_Event_V1_PublishEventsRequest, context: ServerContext) async throws -> Gateway_Event_V1_PublishEventsResponse {
        let events = try request.events.enumerated().map { i, event throws(DomainError) in try NewEvent(event, field: "events[\(i)].") }
        var response = Gateway_Event_V1_PublishEventsResponse()
        response.results = try await log.publish(events, caller: context.caller()).map(Gateway_Event_V1_PublishEventResponse.init)
        return response
    }

    public func publishStream(
        _ requests: RPCAsyncSequence<Gateway_Event_V1_PublishEventRequest>,
        responses: RPCWriter<Gateway_Event_V1_PublishStreamResponse>, context: ServerContext
    ) async throws {
        let iterator = SharedIterator(requests.makeAsyncIterator())
        try await log.publish(streamOf: {
            guard let request = try await iterator.next() else { return nil }
            guard let event = request.event else { return .failure(DomainError.invalid("event", "is required")) }
            return Result { () throws(DomainError) in try NewEvent(event, field: "event.") }
        }, caller: context.caller()) { outcome in
            var response = Gateway_Event_V1_PublishStreamResponse()
            switch outcome {
            case .stored(let event):
                response.result = .event(Gateway_Event_V1_PublishEventResponse(event))
            case .refused(let error):
                var status = Gateway_Common_V1_StatusDetails()
                status.code = Int32(error.code.statusCode.rawValue)
                status.message = error.message
                response.result = .error(status)
            }
            try await responses.write(response)
        }
    }

    public func subscribe(
        _ request: Gateway_Event_V1_SubscribeRequest, responses: RPCWriter<Gateway_Event_V1_SubscribeResponse>, context: ServerContext
    ) async throws {
        let start: EventLog.Start
        if let from = request.fromSequence {
            guard from <= UInt64(Int64.max) else { throw DomainError.invalid("from_sequence", "is too large") }
            start = .sequence(Int64(from))
        } else {
            start = .now
        }
        let heartbeat = request.heartbeatInterval.map { Duration.seconds($0.seconds) + .nanoseconds($0.nanos) }
        let subscription = try await log.subscribe(
            filter: EventFilter(request.filter), from: start, heartbeat: heartbeat, caller: context.caller()
        )
        // A subscriber that stops reading holds one event in a write that cannot finish (publishers and the log
        // go on: it reads the log at its own pace). After `subscriberStall` of that, its call ends with
        // RESOURCE_EXHAUSTED. A watchdog looks at the write in progress, so a fast subscriber pays two lock
        // operations per event, not a timer.
        let stall = subscriberStall
        let writing = WriteInProgress()
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask {
                while true {
                    try await Task.sleep(for: stall / 4)
                    if let since = writing.since.withLock({ $0 }), ContinuousClock.now - since >= stall {
                        // Events handed to the transport may not have reached the subscriber: it resumes from
                        // what it received, which only it knows.
                        throw RPCError(
                            code: .resourceExhausted,
                            message: "the subscriber left an event unread for \(stall.components.seconds) s; "
                                + "subscribe again with from_sequence one past the last event received"
                        )
                    }
                }
            }
            group.addTask {
                for try await item in subscription {
                    var response = Gateway_Event_V1_SubscribeResponse()
                    switch item {
                    case .event(let event):
                        response.item = .event(Gateway_Event_V1_Event(event))
                    case .heartbeat(let lastSequence, let time):
                        var beat = Gateway_Event_V1_Heartbeat()
                        beat.lastSequence = UInt64(lastSequence)
                        beat.time = Google_Protobuf_Timestamp(time)
                        response.item = .heartbeat(beat)
                    }
                    writing.since.withLock { $0 = .now }
                    try await responses.write(response)
                    writing.since.withLock { $0 = nil }
                }
            }
            // The subscription ends only with the call; whichever task ends first ends the other.
            try await group.next()
            group.cancelAll()
        }
    }

    public func listEvents(_ request: Gateway_Event_V1_ListEventsRequest, context: ServerContext) async throws -> Gateway_Event_V1_ListEventsResponse {
        guard request.afterSequence <= UInt64(Int64.max) else { throw DomainError.invalid("after_sequence", "is too large") }
        let page = try await log.list(
            filter: EventFilter(request.filter), afterSequence: Int64(request.afterSequence), pageSize: request.pageSize,
            pageToken: request.pageToken, caller: context.caller()
        )
        var response = Gateway_Event_V1_ListEventsResponse()
        response.events = page.items.map(Gateway_Event_V1_Event.init)
        response.nextPageToken = page.nextPageToken ?? ""
        return response
    }
}

extension NewEvent {
    init(_ message: Gateway_Event_V1_NewEvent, field: String) throws(DomainError) {
        try self.init(
            type: message.type, aggregateID: message.aggregateId, payload: message.payload, contentType: message.contentType,
            attributes: message.attributes, idempotencyKey: message.idempotencyKey.isEmpty ? nil : message.idempotencyKey,
            field: field
        )
    }
}

extension EventFilter {
    init(_ message: Gateway_Event_V1_EventFilter?) {
        self.init(types: Set(message?.types ?? []), aggregateIDs: Set(message?.aggregateIds ?? []))
    }
}

extension Gateway_Event_V1_Event {
    init(_ recorded: RecordedEvent) {
        self.init()
        id = recorded.id.description
        sequence = UInt64(recorded.sequence)
        type = recorded.event.type
        aggregateId = recorded.event.aggregateID
        payload = recorded.event.payload
        contentType = recorded.event.contentType
        attributes = recorded.event.attributes
        occurredAt = Google_Protobuf_Timestamp(recorded.recordedAt)
        idempotencyKey = recorded.event.idempotencyKey ?? ""
        publisher = recorded.publisher
    }
}

extension Gateway_Event_V1_PublishEventResponse {
    init(_ appended: AppendedEvent) {
        self.init()
        id = appended.event.id.description
        sequence = UInt64(appended.event.sequence)
        duplicate = appended.duplicate
    }
}

/// An iterator that one task at a time advances from a `@Sendable` closure (the stream's reader).
private final class SharedIterator<Base: AsyncIteratorProtocol>: @unchecked Sendable where Base.Element: Sendable {
    private var base: Base

    init(_ base: Base) {
        self.base = base
    }

    /// Called from one task only (``EventLog/publish(streamOf:caller:answer:)`` reads from one).
    func next() async throws -> Base.Element? {
        try await base.next()
    }
}

/// When the write in progress to a subscriber began; nil while none is.
private final class WriteInProgress: Sendable {
    let since = Mutex<ContinuousClock.Instant?>(nil)
}
