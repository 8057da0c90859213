import GatewayApplication
import ProtoRuntime

/// The gateway's table: creating it (`gateway migrate`) and checking it (`gateway serve`). On-demand capacity,
/// keys `pk`/`sk`, and the collection index `gsi1` (see ``TableKeys``).
public struct DynamoDBTable: Sendable {
    let db: DynamoDB

    public var name: String { db.table }

    init(db: DynamoDB) {
        self.db = db
    }

    /// Creates the table and its index if missing and waits until both are active; checks an existing one.
    /// Returns whether it created the table.
    @discardableResult
    public func create(timeout: Duration = .seconds(300)) async throws -> Bool {
        let attributes: [JSONValue] = ["pk", "sk", "gsi1pk", "gsi1sk"].map { name in
            object(["AttributeName": .string(name), "AttributeType": .string("S")])
        }
        func keys(_ hash: String, _ range: String) -> JSONValue {
            .array([
                object(["AttributeName": .string(hash), "KeyType": .string("HASH")]),
                object(["AttributeName": .string(range), "KeyType": .string("RANGE")]),
            ])
        }
        let index = object([
            "IndexName": .string(TableKeys.collectionIndex), "KeySchema": keys("gsi1pk", "gsi1sk"),
            "Projection": object(["ProjectionType": .string("ALL")]),
        ])
        var created = true
        do {
            _ = try await db.call("CreateTable", object([
                "TableName": .string(db.table), "AttributeDefinitions": .array(attributes), "KeySchema": keys("pk", "sk"),
                "BillingMode": .string("PAY_PER_REQUEST"), "GlobalSecondaryIndexes": .array([index]),
            ]), idempotent: false)
        } catch let error as AWSError where error.code == "ResourceInUseException" {
            created = false
            // It exists (an earlier migrate, or made by hand): add the index if it lacks it.
            if try await describe().hasIndex == false {
                _ = try await db.call("UpdateTable", object([
                    "TableName": .string(db.table), "AttributeDefinitions": .array(attributes),
                    "GlobalSecondaryIndexUpdates": .array([object(["Create": index])]),
                ]), idempotent: false)
            }
        }
        let deadline = ContinuousClock.now + timeout
        while true {
            let status = try await describe()
            if status.active && status.hasIndex { return created }
            guard ContinuousClock.now < deadline else {
                throw AWSBackend.Problem("table \(db.table) did not become active within \(AWSClient.seconds(timeout))")
            }
            try await Task.sleep(for: .seconds(1))
        }
    }

    /// Checks that the table exists with the gateway's keys and index; an ``AWSBackend/Problem`` naming the fix otherwise.
    public func check() async throws {
        let status = try await describe()
        guard status.hasIndex else {
            throw AWSBackend.Problem("table \(db.table) lacks the index \(TableKeys.collectionIndex): run `gateway migrate` to add it")
        }
        guard status.active else { throw AWSBackend.Problem("table \(db.table) is not active yet (\(status.state)); wait and start again") }
    }

    private func describe() async throws -> (active: Bool, state: String, hasIndex: Bool) {
        let reply: JSONValue
        do {
            reply = try await db.call("DescribeTable", object(["TableName": .string(db.table)]))
        } catch let error as AWSError where error.code == "ResourceNotFoundException" {
            throw AWSBackend.Problem("""
                DynamoDB table \(db.table) does not exist: create it with `gateway migrate` (same flags as serve), \
                or point --dynamodb-table at the gateway's table
                """)
        }
        guard let table = reply["Table"] else { throw AWSBackend.Problem("DescribeTable of \(db.table) answered no table") }
        let keys = (table["KeySchema"]?.arrayValue ?? []).compactMap { $0["AttributeName"]?.stringValue }
        guard keys == ["pk", "sk"] else {
            throw AWSBackend.Problem("table \(db.table) has keys \(keys.joined(separator: ", ")), not pk and sk: it is not a gateway table")
        }
        let index = (table["GlobalSecondaryIndexes"]?.arrayValue ?? []).first { $0["IndexName"]?.stringValue == TableKeys.collectionIndex }
        let state = table["TableStatus"]?.stringValue ?? "UNKNOWN"
        let indexState = index?["IndexStatus"]?.stringValue ?? "missing"
        return (state == "ACTIVE" && (index == nil || indexState == "ACTIVE"), "\(state), index \(indexState)", index != nil)
    }
}
