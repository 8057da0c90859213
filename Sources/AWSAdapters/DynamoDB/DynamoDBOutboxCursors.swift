import GatewayApplication

/// The outbox's cursors in the DynamoDB table (`OUTBOX#<destination>`): `OutboxCursors` for every gateway
/// sharing the table. The lease is taken and renewed by a conditional update (free, expired, or already
/// ours); the cursor moves only while the lease is ours.
public final class DynamoDBOutboxCursors: OutboxCursors {
    let db: DynamoDB
    private let clock: any WallClock

    init(db: DynamoDB, clock: any WallClock) {
        self.db = db
        self.clock = clock
    }

    public func acquire(destination: String, owner: String, leaseSeconds: Int64) async throws -> Int64? {
        try await storageErrors {
            let now = clock.now().seconds
            do {
                let item = try await db.update(TableKeys.outbox(destination), Expression(
                    condition: "attribute_not_exists(pk) OR #owner = :me OR lease_until_s < :now",
                    update: "SET #owner = :me, lease_until_s = :until, published_through = if_not_exists(published_through, :zero)",
                    names: ["#owner": "owner"],
                    values: [":me": .s(owner), ":now": .int(now), ":until": .int(now + leaseSeconds), ":zero": .int(0)]
                ), returnNew: true)
                return item?["published_through"]?.int64 ?? 0
            } catch is ConditionFailed {
                return nil
            }
        }
    }

    public func advance(destination: String, owner: String, to sequence: Int64) async throws {
        try await storageErrors {
            do {
                try await db.update(TableKeys.outbox(destination), Expression(
                    condition: "#owner = :me AND published_through <= :sequence", update: "SET published_through = :sequence",
                    names: ["#owner": "owner"], values: [":me": .s(owner), ":sequence": .int(sequence)]
                ))
            } catch is ConditionFailed {
                throw DomainError(.failedPrecondition, "the outbox lease of \(destination) passed to another process")
            }
        }
    }
}
