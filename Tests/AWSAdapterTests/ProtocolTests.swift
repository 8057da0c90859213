@testable import AWSAdapters
import GatewayApplication
import Logging
import ProtoRuntime
import Testing

/// Protocol details moto never exercises (it never leaves items unprocessed, never fails part of a batch),
/// against scripted replies; and the decoders of what the store sends back.
@Suite("AWS protocols")
struct ProtocolTests {
    func client(_ http: ScriptedHTTP, service: String) -> AWSClient {
        var settings = AWSClient.Settings.defaults
        settings.sleep = { _ in }
        return AWSClient(
            endpoint: AWSEndpoint(service: service, region: "us-east-1", endpointURL: "http://127.0.0.1:9"), http: http,
            credentials: AWSClientTests.credentials, clock: FakeWallClock(UnixTime(seconds: 1_750_000_000)), budget: RetryBudget(),
            settings: settings, logger: Logger(label: "test")
        )
    }

    @Test func batchWritesSendUnprocessedItemsAgainUntilNoneAreLeft() async throws {
        let unprocessed = #"{"UnprocessedItems":{"t":[{"DeleteRequest":{"Key":{"pk":{"S":"k3"},"sk":{"S":"s"}}}}]}}"#
        let http = ScriptedHTTP([.status(200, body: unprocessed), .status(200, body: unprocessed), .status(200, body: "{}")])
        let db = DynamoDB(client: client(http, service: "dynamodb"), table: "t")
        try await db.deleteAll((0..<5).map { TableKeys.key("k\($0)", "s") })
        #expect(http.requests.count == 3)
        #expect(http.requests[1].bodyText.contains("k3") && !http.requests[1].bodyText.contains("k1"), "only the unprocessed item goes again")
        // More than 25 keys go in batches of 25.
        let many = ScriptedHTTP([])
        try await DynamoDB(client: client(many, service: "dynamodb"), table: "t").deleteAll((0..<60).map { TableKeys.key("k\($0)", "s") })
        #expect(many.requests.count == 3)
    }

    @Test func transactionCancellationsSayWhichWriteFailed() async throws {
        let body = #"{"__type":"com.amazonaws.dynamodb.v20120810#TransactionCanceledException","message":"cancelled","CancellationReasons":[{"Code":"None"},{"Code":"ConditionalCheckFailed","Item":{"version":{"N":"7"}}}]}"#
        let db = DynamoDB(client: client(ScriptedHTTP([.status(400, body: body)]), service: "dynamodb"), table: "t")
        let failed = await #expect(throws: ConditionFailed.self) {
            try await db.transact([.put(["pk": .s("a")]), .put(["pk": .s("b")])], token: "t1")
        }
        #expect(failed?.index == 1 && failed?.item?["version"] == .n("7"))
        let conflict = #"{"__type":"com.amazonaws.dynamodb.v20120810#TransactionCanceledException","CancellationReasons":[{"Code":"TransactionConflict"}]}"#
        let busy = DynamoDB(client: client(ScriptedHTTP([.status(400, body: conflict)]), service: "dynamodb"), table: "t")
        await #expect(throws: TransactionConflict.self) { try await busy.transact([.put(["pk": .s("a")])], token: "t2") }
    }

    /// `Select: COUNT` counts one page (DynamoDB stops a query page at 1 MB read, before the filter; DynamoDB
    /// API Reference, Query): a count adds every page's `Count` until no `LastEvaluatedKey` comes back, even a
    /// page that counted nothing after the filter. moto returns the whole collection in one page.
    @Test func countUsersAddsEveryPageUntilNoLastEvaluatedKeyIsLeft() async throws {
        func page(_ count: Int, next: String?) -> ScriptedHTTP.Reply {
            let key = next.map { #","LastEvaluatedKey":{"pk":{"S":"USER#\#($0)"},"sk":{"S":"USER#\#($0)"},"gsi1pk":{"S":"USER"},"gsi1sk":{"S":"\#($0)"}}"# } ?? ""
            return .status(200, body: #"{"Count":\#(count),"ScannedCount":\#(count + 1)\#(key)}"#)
        }
        for activeOnly in [false, true] {
            let http = ScriptedHTTP([page(3, next: "A"), page(0, next: "B"), page(4, next: nil)], then: .status(500))
            let db = DynamoDB(client: client(http, service: "dynamodb"), table: "t")
            let events = DynamoDBEventStore(db: db, pollInterval: .seconds(3600))
            defer { events.close() }
            let count = try await DynamoDBUserStore(db: db, events: events).count(activeOnly: activeOnly)
            #expect(count == 7)
            #expect(http.requests.count == 3)
            let bodies = try http.requests.map { try JSONParser.parse($0.body) }
            for body in bodies {
                #expect(body["Select"]?.stringValue == "COUNT" && body["IndexName"]?.stringValue == "gsi1")
                #expect((body["FilterExpression"] != nil) == activeOnly)
            }
            #expect(bodies[0]["ExclusiveStartKey"] == nil)
            #expect(bodies[1]["ExclusiveStartKey"]?["gsi1sk"]?["S"]?.stringValue == "A")
            #expect(bodies[2]["ExclusiveStartKey"]?["gsi1sk"]?["S"]?.stringValue == "B")
        }
    }

    static func event(_ n: Int, payload: Int = 10) throws -> RecordedEvent {
        RecordedEvent(
            id: ULID(milliseconds: 1_750_000_000_000 + UInt64(n), randomHigh: 1, randomLow: UInt64(n)), sequence: Int64(n),
            event: try NewEvent(type: "OrderPlaced", aggregateID: "order-\(n)", payload: Array(repeating: 7, count: payload), contentType: "text/plain"),
            publisher: "uid", recordedAt: UnixTime(seconds: 1_750_000_000 + Int64(n))
        )
    }

    @Test func partialPublishBatchFailuresAreRetriedOrRejectedByWhoseFaultTheyAre() async throws {
        let reply = """
            <PublishBatchResponse><PublishBatchResult><Successful><member><Id>e1</Id><MessageId>m1</MessageId></member></Successful>
            <Failed><member><Id>e2</Id><Code>InternalError</Code><Message>try later</Message><SenderFault>false</SenderFault></member>
            <member><Id>e3</Id><Code>InvalidParameter</Code><Message>bad</Message><SenderFault>true</SenderFault></member></Failed>
            </PublishBatchResult></PublishBatchResponse>
            """
        let http = ScriptedHTTP([.status(200, body: reply)])
        let publisher = SNSEventPublisher(client: client(http, service: "sns"), topicARN: "arn:aws:sns:us-east-1:123456789012:events")
        let outcomes = try await publisher.publish([try Self.event(1), try Self.event(2), try Self.event(3), try Self.event(4)])
        #expect(outcomes == [.published, .retry("InternalError: try later"), .rejected("InvalidParameter: bad"), .retry("SNS did not report on the entry")])
        let sent = http.requests[0].bodyText
        #expect(sent.contains("Action=PublishBatch") && sent.contains("PublishBatchRequestEntries.member.4.Id=e4"))
        #expect(sent.contains("MessageAttributes.entry.1.Name=event_type") && sent.contains("Value.StringValue=OrderPlaced"))
    }

    @Test func batchesRespectTenEntriesAnd256KiBAndOversizedPayloadsAreLeftOut() async throws {
        let http = ScriptedHTTP([], then: .status(200, body: "<PublishBatchResponse><PublishBatchResult><Successful/></PublishBatchResult></PublishBatchResponse>"))
        let publisher = SNSEventPublisher(client: client(http, service: "sns"), topicARN: "arn:aws:sns:us-east-1:1:t")
        _ = try await publisher.publish(try (1...25).map { try Self.event($0) })
        #expect(http.requests.count == 3, "25 events: 10 + 10 + 5")
        let big = try Self.event(1, payload: 200_000)
        let message = SNSEventPublisher.message(for: big)
        #expect(message.utf8.count < 262_144 && message.contains(#""payload_omitted":true"#) && message.contains(#""payload_size":200000"#))
        let small = SNSEventPublisher.message(for: try Self.event(2))
        #expect(small.contains(#""sequence":2"#) && small.contains(#""payload":"BwcHBwcHBwcHBw=="#) && small.contains(#""occurred_at":"2025-06-15T"#))
    }

    @Test func eventSegmentsRoundTripAndDamagedOnesAreErrors() throws {
        let events = try (1...3).map { n in
            PendingEvent(
                id: ULID(milliseconds: 1_750_000_000_000 + UInt64(n), randomHigh: 2, randomLow: UInt64(n)),
                event: try NewEvent(
                    type: "T\(n)", aggregateID: "a", payload: Array("p\(n)".utf8), attributes: ["k": "v\(n)", "empty": "é"],
                    idempotencyKey: n == 2 ? "key" : nil
                ),
                publisher: "uid-\(n)", recordedAt: UnixTime(seconds: -5, nanoseconds: 7)
            )
        }
        let bytes = EventSegmentCoding.encode(events)
        let decoded = try EventSegmentCoding.decode(bytes, first: 41)
        #expect(decoded.map(\.sequence) == [41, 42, 43])
        #expect(decoded.map(\.event) == events.map(\.event) && decoded.map(\.id) == events.map(\.id))
        #expect(decoded.map(\.recordedAt) == events.map(\.recordedAt))
        for cut in [0, 7, bytes.count / 2, bytes.count - 1] {
            #expect(throws: SegmentError.self) { _ = try EventSegmentCoding.decode(Array(bytes.prefix(cut)), first: 1) }
        }
        var hostile = bytes
        hostile.replaceSubrange(1..<5, with: [0xFF, 0xFF, 0xFF, 0xFF])
        #expect(throws: SegmentError.self) { _ = try EventSegmentCoding.decode(hostile, first: 1) }
    }

    @Test func xmlReadsWhatAWSWritesAndRefusesWhatItShouldNot() throws {
        let document = try XMLDocument(parsing: Array("""
            <?xml version="1.0" encoding="UTF-8"?>
            <!-- a comment -->
            <s3:ListBucketResult xmlns:s3="http://s3.amazonaws.com/doc/2006-03-01/">
              <Name>b&amp;c</Name><Contents><Key>a &lt;b&gt; &#233;&#x41;</Key></Contents><Contents><Key><![CDATA[x<y]]></Key></Contents>
              <Empty/>
            </s3:ListBucketResult>
            """.utf8))
        #expect(document.root.name == "ListBucketResult")
        #expect(document.root.text(at: "Name") == "b&c")
        #expect(document.root.children("Contents").map { $0.text(at: "Key") } == ["a <b> éA", "x<y"])
        #expect(document.root.child("Empty")?.text == "")
        for bad in ["", "<a>", "<a></b>", "<a/><b/>", "text", "<!DOCTYPE x [<!ENTITY e \"boom\">]><a>&e;</a>", "<a>&unknown;</a>", "<a b=c/>"] {
            #expect(throws: XMLDocument.ParseError.self, "\(bad)") { _ = try XMLDocument(parsing: Array(bad.utf8)) }
        }
        let deep = String(repeating: "<a>", count: 10_000) + String(repeating: "</a>", count: 10_000)
        #expect(throws: XMLDocument.ParseError.self) { _ = try XMLDocument(parsing: Array(deep.utf8)) }
    }

    @Test func attributeValuesRoundTripThroughJSON() throws {
        let item: Item = [
            "s": .s("x"), "n": .n("-12.5"), "b": .b([0, 1, 255]), "t": .bool(true), "z": .null, "l": .l([.s("a"), .n("1")]),
            "m": .m(["inner": .s("v")]), "ss": .ss(["a", "b"]),
        ]
        var writer = JSONWriter()
        writer.value(Item.json(item))
        #expect(try Item.decode(JSONParser.parse(writer.bytes)) == item)
        for bad in [#"{"a":{"S":1}}"#, #"{"a":{"B":"%%"}}"#, #"{"a":{"X":"y"}}"#, #"{"a":{}}"#, #"{"a":{"S":"x","N":"1"}}"#] {
            #expect(throws: DynamoDBFormatError.self) { _ = try Item.decode(JSONParser.parse(bad)) }
        }
    }
}
