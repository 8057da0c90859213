import GatewayApplication
import ProtoRuntime

/// The DynamoDB operations the stores use, on one table (AWS JSON 1.0: `POST /` with
/// `X-Amz-Target: DynamoDB_20120810.<Operation>`; DynamoDB API Reference).
struct DynamoDB: Sendable {
    let client: AWSClient
    let table: String

    /// Sends `operation` with `body`; the reply's JSON, or ``AWSError``.
    func call(_ operation: String, _ body: JSONValue, idempotent: Bool = true) async throws -> JSONValue {
        var writer = JSONWriter()
        writer.value(body)
        let response = try await client.send(.init(
            operation: operation,
            headers: [("Content-Type", "application/x-amz-json-1.0"), ("X-Amz-Target", "DynamoDB_20120810.\(operation)")],
            body: writer.bytes, idempotent: idempotent
        ))
        do {
            return try JSONParser.parse(response.body, maxDepth: 64)
        } catch {
            throw DynamoDBFormatError("\(operation) answered something that is not JSON")
        }
    }

    /// The item with `key`, read strongly consistent.
    func get(_ key: Item) async throws -> Item? {
        let reply = try await call("GetItem", object(["TableName": .string(table), "Key": Item.json(key), "ConsistentRead": .bool(true)]))
        return try reply["Item"].map(Item.decode)
    }

    /// An update or conditional put/delete: `expression` holds the condition and update expressions and
    /// their placeholders. Throws ``ConditionFailed`` (with the stored item, when there is one) when the
    /// condition does not hold.
    @discardableResult
    func update(_ key: Item, _ expression: Expression, returnNew: Bool = false) async throws -> Item? {
        var entries: [(String, JSONValue)] = [("TableName", .string(table)), ("Key", Item.json(key))]
        entries += expression.members
        if returnNew { entries.append(("ReturnValues", .string("ALL_NEW"))) }
        entries.append(("ReturnValuesOnConditionCheckFailure", .string("ALL_OLD")))
        do {
            let reply = try await call("UpdateItem", .object(JSONObject(entries)), idempotent: false)
            return try reply["Attributes"].map(Item.decode)
        } catch let error as AWSError where error.code == "ConditionalCheckFailedException" {
            throw ConditionFailed(index: 0, item: Self.itemInError(error))
        }
    }

    func delete(_ key: Item, _ expression: Expression = Expression()) async throws {
        var entries: [(String, JSONValue)] = [("TableName", .string(table)), ("Key", Item.json(key))]
        entries += expression.members
        do {
            _ = try await call("DeleteItem", .object(JSONObject(entries)), idempotent: expression.condition == nil)
        } catch let error as AWSError where error.code == "ConditionalCheckFailedException" {
            throw ConditionFailed(index: 0, item: Self.itemInError(error))
        }
    }

    struct Page {
        var items: [Item]
        var lastEvaluatedKey: Item?
        var count: Int
    }

    /// One page of a query (`Limit` counts items read, before the filter).
    func query(
        index: String? = nil, _ expression: Expression, limit: Int? = nil, startKey: Item? = nil, forward: Bool = true,
        countOnly: Bool = false
    ) async throws -> Page {
        var entries: [(String, JSONValue)] = [("TableName", .string(table))]
        if let index { entries.append(("IndexName", .string(index))) } else { entries.append(("ConsistentRead", .bool(true))) }
        entries += expression.members
        if let limit { entries.append(("Limit", .number(String(limit)))) }
        if let startKey { entries.append(("ExclusiveStartKey", Item.json(startKey))) }
        if !forward { entries.append(("ScanIndexForward", .bool(false))) }
        if countOnly { entries.append(("Select", .string("COUNT"))) }
        let reply = try await call("Query", .object(JSONObject(entries)))
        return Page(
            items: try (reply["Items"]?.arrayValue ?? []).map(Item.decode),
            lastEvaluatedKey: try reply["LastEvaluatedKey"].map(Item.decode),
            count: Int(reply["Count"]?.int64Value ?? 0)
        )
    }

    /// Up to `limit` items of the collection `partition` with ids after `after`, in id order, that satisfy
    /// `filter` (an expression and its values).
    func collection(_ partition: String, after: ULID?, limit: Int, filter: (String, Item)? = nil) async throws -> [Item] {
        guard limit > 0 else { return [] }
        var expression = Expression(keyCondition: "gsi1pk = :p", filter: filter?.0, values: [":p": .s(partition)])
        if let after {
            expression.keyCondition = "gsi1pk = :p AND gsi1sk > :after"
            expression.values[":after"] = .s(after.description)
        }
        expression.values.merge(filter?.1 ?? [:]) { a, _ in a }
        var items: [Item] = []
        var startKey: Item?
        repeat {
            // `Limit` counts items read before the filter: read a little more than needed when filtering.
            let wanted = limit - items.count
            let page = try await query(
                index: TableKeys.collectionIndex, expression, limit: min(1000, filter == nil ? wanted : wanted * 2), startKey: startKey
            )
            items += page.items
            startKey = page.lastEvaluatedKey
        } while items.count < limit && startKey != nil
        return Array(items.prefix(limit))
    }

    // MARK: Transactions

    /// One action of `TransactWriteItems`.
    enum Write: Sendable {
        case put(Item, Expression = Expression())
        case update(key: Item, Expression)
        case delete(key: Item, Expression = Expression())
        case check(key: Item, Expression)

        func json(table: String) -> JSONValue {
            let (name, body): (String, [(String, JSONValue)]) = switch self {
            case .put(let item, let expression): ("Put", [("Item", Item.json(item))] + expression.members)
            case .update(let key, let expression): ("Update", [("Key", Item.json(key))] + expression.members)
            case .delete(let key, let expression): ("Delete", [("Key", Item.json(key))] + expression.members)
            case .check(let key, let expression): ("ConditionCheck", [("Key", Item.json(key))] + expression.members)
            }
            let members = [("TableName", JSONValue.string(table))] + body + [("ReturnValuesOnConditionCheckFailure", .string("ALL_OLD"))]
            return object([name: .object(JSONObject(members))])
        }

        /// Item bytes as DynamoDB counts them towards the 4 MB transaction limit (names and values).
        var size: Int {
            switch self {
            case .put(let item, _): Item.size(item)
            case .update(let key, let expression): Item.size(key) + expression.size
            case .delete(let key, _), .check(let key, _): Item.size(key)
            }
        }
    }

    /// DynamoDB's limits on one transaction.
    static let maximumTransactionActions = 100
    static let maximumTransactionBytes = 4_000_000

    /// Applies `writes` all or none. A write whose condition fails throws ``ConditionFailed`` with its index;
    /// a conflict with a concurrent transaction throws ``TransactionConflict`` (safe to try again).
    /// `token` makes a resent request idempotent for ten minutes (`ClientRequestToken`).
    func transact(_ writes: [Write], token: String) async throws {
        precondition(writes.count <= Self.maximumTransactionActions, "callers split or refuse larger transactions")
        let body = object([
            "TransactItems": .array(writes.map { $0.json(table: table) }), "ClientRequestToken": .string(token),
        ])
        do {
            _ = try await call("TransactWriteItems", body, idempotent: true)
        } catch let error as AWSError where error.code == "TransactionCanceledException" {
            let reasons = (try? JSONParser.parse(error.body, maxDepth: 64))?["CancellationReasons"]?.arrayValue ?? []
            for (index, reason) in reasons.enumerated() {
                switch reason["Code"]?.stringValue {
                case "ConditionalCheckFailed":
                    throw ConditionFailed(index: index, item: try? reason["Item"].map(Item.decode))
                case "TransactionConflict":
                    throw TransactionConflict()
                default:
                    continue
                }
            }
            // No reason names a failed condition: throttling or a conflict inside DynamoDB; try again.
            if reasons.contains(where: { ["ThrottlingError", "ProvisionedThroughputExceeded", "TransactionConflict"].contains($0["Code"]?.stringValue ?? "") }) {
                throw TransactionConflict()
            }
            throw error
        } catch let error as AWSError where error.code == "TransactionConflictException" || error.code == "TransactionInProgressException" {
            throw TransactionConflict()
        }
    }

    /// Deletes `keys` with `BatchWriteItem`, 25 at a time, sending unprocessed items again with backoff
    /// (DynamoDB answers `UnprocessedItems` when it throttles part of a batch).
    func deleteAll(_ keys: [Item]) async throws {
        for start in stride(from: 0, to: keys.count, by: 25) {
            var pending = keys[start..<min(keys.count, start + 25)].map { key in object(["DeleteRequest": object(["Key": Item.json(key)])]) }
            var round = 0
            while !pending.isEmpty {
                let reply = try await call("BatchWriteItem", object(["RequestItems": object([table: .array(pending)])]))
                pending = reply["UnprocessedItems"]?[table]?.arrayValue ?? []
                if pending.isEmpty { break }
                round += 1
                guard round < 10 else {
                    throw AWSError(kind: .reply, service: "dynamodb", operation: "BatchWriteItem", code: "UnprocessedItems",
                                   message: "\(pending.count) deletes stayed unprocessed after \(round) rounds")
                }
                try await Task.sleep(for: .milliseconds(Int.random(in: 0...(25 << min(round, 8)))))
            }
        }
    }

    static func itemInError(_ error: AWSError) -> Item? {
        (try? JSONParser.parse(error.body, maxDepth: 64))?["Item"].flatMap { try? Item.decode($0) }
    }
}

/// A condition did not hold: `index` says which write of a transaction (0 for single writes), `item` is
/// the stored item it was checked against (absent when there is none).
struct ConditionFailed: Error {
    var index: Int
    var item: Item?
}

/// A concurrent transaction touched the same items: nothing was written; the caller may try again.
struct TransactionConflict: Error {}

/// Condition and update expressions with their placeholders.
struct Expression: Sendable {
    var condition: String?
    var update: String?
    var keyCondition: String?
    var filter: String?
    var names: [String: String] = [:]
    var values: [String: AttributeValue] = [:]

    var members: [(String, JSONValue)] {
        var members: [(String, JSONValue)] = []
        if let keyCondition { members.append(("KeyConditionExpression", .string(keyCondition))) }
        if let filter { members.append(("FilterExpression", .string(filter))) }
        if let update { members.append(("UpdateExpression", .string(update))) }
        if let condition { members.append(("ConditionExpression", .string(condition))) }
        if !names.isEmpty {
            members.append(("ExpressionAttributeNames", .object(JSONObject(names.sorted { $0.key < $1.key }.map { ($0.key, .string($0.value)) }))))
        }
        if !values.isEmpty { members.append(("ExpressionAttributeValues", Item.json(values))) }
        return members
    }

    var size: Int { values.values.reduce(0) { $0 + $1.size } }
}

extension Item {
    static func size(_ item: Item) -> Int {
        item.reduce(0) { $0 + $1.key.utf8.count + $1.value.size }
    }
}

extension AttributeValue {
    /// DynamoDB's item-size accounting: text and binary lengths, about 21 bytes per number, 3 per container.
    var size: Int {
        switch self {
        case .s(let text): text.utf8.count
        case .n: 21
        case .b(let bytes): bytes.count
        case .bool, .null: 1
        case .l(let values): 3 + values.reduce(0) { $0 + 1 + $1.size }
        case .m(let item): 3 + item.reduce(0) { $0 + 1 + $1.key.utf8.count + $1.value.size }
        case .ss(let values): values.reduce(0) { $0 + $1.utf8.count }
        }
    }
}
