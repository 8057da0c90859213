import GatewayApplication
import ProtoRuntime

/// Publishes events to an SNS topic with `PublishBatch` (at most 10 entries and 256 KiB per call; SNS API
/// Reference, Query protocol): `EventPublisher`, the outbox's SNS consumer.
///
/// Each message is the event as JSON: `{"id", "sequence", "type", "aggregate_id", "content_type",
/// "attributes", "payload" (base64), "occurred_at"}`, with the message attributes `event_type`,
/// `aggregate_id` and `event_id` for subscription filters. A message cannot exceed 256 KiB: an event whose
/// payload does not fit is sent without it (`"payload_omitted": true` and `"payload_size"`); consumers read it
/// with `ListEvents`. FIFO topics (`.fifo`) get the aggregate as message group and the event id as
/// deduplication id.
public final class SNSEventPublisher: EventPublisher {
    let client: AWSClient
    public let topicARN: String
    public var destination: String { topicARN }

    static let maximumMessageBytes = 262_144

    init(client: AWSClient, topicARN: String) {
        self.client = client
        self.topicARN = topicARN
    }

    /// Checks that the topic exists and the credentials may use it.
    public func check() async throws {
        do {
            _ = try await call(["Action": "GetTopicAttributes", "TopicArn": topicARN], operation: "GetTopicAttributes")
        } catch let error as AWSError where error.code == "NotFound" || error.status == 404 {
            throw AWSBackend.Problem("SNS topic \(topicARN) does not exist: create it, or fix --sns-topic-arn")
        }
    }

    public func publish(_ events: [RecordedEvent]) async throws -> [PublishOutcome] {
        var outcomes: [PublishOutcome] = []
        // Calls of at most 10 entries and 256 KiB.
        var batch: [(RecordedEvent, String)] = []
        var bytes = 0
        for event in events {
            let message = Self.message(for: event)
            if batch.count == 10 || bytes + message.utf8.count > Self.maximumMessageBytes - 4096 {
                outcomes += try await publishBatch(batch)
                batch = []
                bytes = 0
            }
            batch.append((event, message))
            bytes += message.utf8.count
        }
        if !batch.isEmpty { outcomes += try await publishBatch(batch) }
        return outcomes
    }

    private func publishBatch(_ batch: [(RecordedEvent, String)]) async throws -> [PublishOutcome] {
        var parameters: [(String, String)] = [("Action", "PublishBatch"), ("TopicArn", topicARN)]
        let fifo = topicARN.hasSuffix(".fifo")
        for (index, (event, message)) in batch.enumerated() {
            let entry = "PublishBatchRequestEntries.member.\(index + 1)"
            parameters += [("\(entry).Id", "e\(event.sequence)"), ("\(entry).Message", message)]
            let attributes = [("event_type", event.event.type), ("aggregate_id", event.event.aggregateID), ("event_id", event.id.description)]
            for (number, (name, value)) in attributes.enumerated() where !value.isEmpty {
                let attribute = "\(entry).MessageAttributes.entry.\(number + 1)"
                parameters += [("\(attribute).Name", name), ("\(attribute).Value.DataType", "String"), ("\(attribute).Value.StringValue", value)]
            }
            if fifo {
                parameters += [
                    ("\(entry).MessageGroupId", event.event.aggregateID.isEmpty ? "events" : String(event.event.aggregateID.prefix(128))),
                    ("\(entry).MessageDeduplicationId", event.id.description),
                ]
            }
        }
        let reply: XMLDocument
        do {
            reply = try await call(parameters, operation: "PublishBatch")
        } catch let error as AWSError where error.kind == .reply && RetryPolicy.classify(error, idempotent: true) == nil && !error.isAuthenticationFailure {
            // The whole call was refused as malformed (e.g. one entry too large): try the events one by one,
            // so one bad event does not hold back the others.
            guard batch.count > 1 else { return [.rejected("\(error.code): \(error.message)")] }
            var outcomes: [PublishOutcome] = []
            for entry in batch { outcomes += try await publishBatch([entry]) }
            return outcomes
        }
        let result = reply.root.child("PublishBatchResult")
        let succeeded = Set((result?.child("Successful")?.children("member") ?? []).compactMap { $0.text(at: "Id") })
        var failed: [String: PublishOutcome] = [:]
        for member in result?.child("Failed")?.children("member") ?? [] {
            guard let id = member.text(at: "Id") else { continue }
            let reason = "\(member.text(at: "Code") ?? "failed"): \(member.text(at: "Message") ?? "")"
            // A sender fault is the request's: sending it again cannot help. Others (throttling, SNS faults) may pass.
            failed[id] = member.text(at: "SenderFault") == "true" ? .rejected(reason) : .retry(reason)
        }
        return batch.map { event, _ in
            let id = "e\(event.sequence)"
            if succeeded.contains(id) { return .published }
            return failed[id] ?? .retry("SNS did not report on the entry")
        }
    }

    /// A Query-protocol call (`application/x-www-form-urlencoded`, RFC 3986 encoding) and its XML reply.
    private func call(_ parameters: [(String, String)], operation: String) async throws -> XMLDocument {
        let body = ([("Version", "2010-03-31")] + parameters)
            .map { "\(SigV4Signer.encode($0.0))=\(SigV4Signer.encode($0.1))" }.joined(separator: "&")
        let response = try await client.send(.init(
            operation: operation, headers: [("Content-Type", "application/x-www-form-urlencoded; charset=utf-8")],
            body: Array(body.utf8),
            // PublishBatch carries entry ids, not an idempotency token: a resent call after a lost reply may
            // deliver twice, which consumers tell by the event id.
            idempotent: operation != "PublishBatch"
        ))
        return try XMLDocument(parsing: response.body)
    }

    private func call(_ parameters: [String: String], operation: String) async throws -> XMLDocument {
        try await call(parameters.sorted { $0.key < $1.key }.map { ($0.key, $0.value) }, operation: operation)
    }

    /// The event as the message body.
    static func message(for event: RecordedEvent) -> String {
        func json(omittingPayload: Bool) -> String {
            var writer = JSONWriter()
            writer.beginObject()
            writer.key("id"); writer.string(event.id.description)
            writer.key("sequence"); writer.rawNumber(String(event.sequence))
            writer.key("type"); writer.string(event.event.type)
            writer.key("aggregate_id"); writer.string(event.event.aggregateID)
            writer.key("content_type"); writer.string(event.event.contentType)
            writer.key("attributes")
            writer.beginObject()
            for (key, value) in event.event.attributes.sorted(by: { $0.key < $1.key }) {
                writer.key(key); writer.string(value)
            }
            writer.endObject()
            if omittingPayload {
                writer.key("payload_omitted"); writer.bool(true)
                writer.key("payload_size"); writer.rawNumber(String(event.event.payload.count))
            } else {
                writer.key("payload"); writer.bytes(event.event.payload)
            }
            writer.key("occurred_at")
            writer.string((try? ProtoJSONTime.formatTimestamp(seconds: event.recordedAt.seconds, nanos: event.recordedAt.nanoseconds)) ?? "")
            writer.endObject()
            return writer.string
        }
        let whole = json(omittingPayload: false)
        return whole.utf8.count <= maximumMessageBytes - 4096 ? whole : json(omittingPayload: true)
    }
}
