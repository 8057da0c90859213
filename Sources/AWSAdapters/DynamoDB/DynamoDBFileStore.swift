import GatewayApplication
import OpenSSLCrypto

/// File records and blob reference counts in the DynamoDB table: `FileRepository`, held across every gateway
/// sharing the table (and the bucket).
///
/// Each blob has a reference item (`BLOB#<key>`) whose `refs` counts the records with its key plus the holds
/// of uploads under way. Records are created and deleted in one transaction with their count change (and
/// their domain events). The blob protocol of ``FileRepository`` runs on conditional writes:
/// - `pin` adds one to `refs` unless the item carries a deletion mark;
/// - `deleteBlob` marks the item (`deleting`, with a random token and the time) only if `refs` is 0 and no
///   mark is there, deletes the bytes, then removes the item if the mark is still its own.
/// So an upload on one gateway racing a delete of the same bytes on another either holds the blob before the
/// mark (the deletion does not start) or waits for the deletion to end and publishes the bytes again.
/// A mark older than `deletionLease` belongs to a gateway that died mid-deletion: a `pin` clears it. A
/// deleting gateway gives up rather than start deleting later than `deletionLease / 4` after marking.
public final class DynamoDBFileStore: FileRepository {
    let db: DynamoDB
    public let events: DynamoDBEventStore
    private let clock: any WallClock
    static let deletionLease: Int64 = 120
    /// How long a `pin` waits for a deletion of its blob to end.
    static let pinPatience: Duration = .seconds(15)

    init(db: DynamoDB, events: DynamoDBEventStore, clock: any WallClock) {
        self.db = db
        self.events = events
        self.clock = clock
    }

    public func create(_ file: FileRecord, recording pending: [PendingEvent]) async throws {
        try await storageErrors {
            _ = try await events.commit(pending) {
                .init(
                    writes: [
                        .put(Self.item(file), Expression(condition: "attribute_not_exists(pk)")),
                        .update(key: TableKeys.blob(file.key), Expression(
                            condition: "attribute_not_exists(deleting)", update: "ADD refs :one", values: [":one": .int(1)]
                        )),
                    ],
                    result: (),
                    // A deletion of the blob under way (only possible without a pin): wait for it and try again.
                    explain: { failed in failed.index == 0 ? DomainError(.alreadyExists, "file \(file.id) already exists") : nil }
                )
            }
        }
    }

    public func file(id: ULID) async throws -> FileRecord? {
        try await storageErrors { try await db.get(TableKeys.file(id)).map(Self.file(from:)) }
    }

    public func list(owner: String, after: ULID?, limit: Int) async throws -> [FileRecord] {
        try await storageErrors { try await db.collection("FILES#\(owner)", after: after, limit: limit).map(Self.file(from:)) }
    }

    public func delete(id: ULID, recording pending: [PendingEvent]) async throws -> (file: FileRecord, remainingReferences: Int) {
        try await storageErrors {
            try await events.commit(pending) {
                guard let item = try await db.get(TableKeys.file(id)) else { throw DomainError.notFound("file \(id)") }
                let file = try Self.file(from: item)
                // The count as read, and a condition that it is still that: the remaining count is exact even
                // when deletes of the same blob race.
                let refs = try await db.get(TableKeys.blob(file.key))?["refs"]?.int64
                let count: DynamoDB.Write = if let refs, refs > 0 {
                    .update(key: TableKeys.blob(file.key), Expression(
                        condition: "refs = :refs", update: "SET refs = :left", values: [":refs": .int(refs), ":left": .int(refs - 1)]
                    ))
                } else {
                    .update(key: TableKeys.blob(file.key), Expression(condition: "attribute_not_exists(refs) OR refs = :zero", update: "SET refs = :zero", values: [":zero": .int(0)]))
                }
                return .init(
                    writes: [.delete(key: TableKeys.file(id), Expression(condition: "attribute_exists(pk)")), count],
                    result: (file, Int(max(0, (refs ?? 1) - 1)))
                )
            }.result
        }
    }

    public func references(to key: BlobKey) async throws -> Int {
        try await storageErrors { Int(try await db.get(TableKeys.blob(key))?["refs"]?.int64 ?? 0) }
    }

    public func pin(_ key: BlobKey) async throws {
        try await storageErrors {
            let started = ContinuousClock.now
            var wait: Duration = .milliseconds(10)
            while true {
                do {
                    try await db.update(TableKeys.blob(key), Expression(
                        condition: "attribute_not_exists(deleting)", update: "ADD refs :one", values: [":one": .int(1)]
                    ))
                    return
                } catch let failed as ConditionFailed {
                    // A deletion holds the blob. One that has outlived its lease belongs to a gateway that died.
                    if let token = failed.item?["deleting"]?.string, let at = failed.item?["deleting_at_s"]?.int64,
                        clock.now().seconds - at > Self.deletionLease
                    {
                        _ = try? await db.update(TableKeys.blob(key), Expression(
                            condition: "deleting = :token", update: "REMOVE deleting, deleting_at_s", values: [":token": .s(token)]
                        ))
                        continue
                    }
                }
                guard ContinuousClock.now - started < Self.pinPatience else {
                    throw DomainError(.unavailable, "blob \(key) is being deleted; try again")
                }
                try await Task.sleep(for: wait)
                wait = min(wait * 2, .milliseconds(500))
            }
        }
    }

    public func unpin(_ key: BlobKey) async throws -> Int {
        try await storageErrors {
            do {
                let item = try await db.update(
                    TableKeys.blob(key),
                    Expression(condition: "refs > :zero", update: "ADD refs :minus", values: [":zero": .int(0), ":minus": .int(-1)]),
                    returnNew: true
                )
                return Int(item?["refs"]?.int64 ?? 0)
            } catch is ConditionFailed {
                return 0
            }
        }
    }

    @discardableResult
    public func deleteBlob(_ key: BlobKey, using delete: @Sendable () async throws -> Void) async throws -> Bool {
        try await storageErrors {
            let token = Hex.lowercase(try Digest.randomBytes(16))
            let marked = ContinuousClock.now
            do {
                try await db.update(TableKeys.blob(key), Expression(
                    condition: "(attribute_not_exists(refs) OR refs = :zero) AND attribute_not_exists(deleting)",
                    update: "SET deleting = :token, deleting_at_s = :now",
                    values: [":zero": .int(0), ":token": .s(token), ":now": .int(clock.now().seconds)]
                ))
            } catch is ConditionFailed {
                return false  // referenced or held again, or another gateway is deleting it
            }
            let ours = Expression(condition: "deleting = :token", values: [":token": .s(token)])
            do {
                guard ContinuousClock.now - marked < .seconds(Self.deletionLease / 4) else {
                    throw DomainError(.unavailable, "blob \(key) was not deleted: marking it took too long")
                }
                try await delete()
            } catch {
                // The bytes stay; the mark goes, so uploads of them go on.
                var unmark = ours
                unmark.update = "REMOVE deleting, deleting_at_s"
                _ = try? await db.update(TableKeys.blob(key), unmark)
                throw error
            }
            try? await db.delete(TableKeys.blob(key), ours)
            return true
        }
    }
}

extension DynamoDBFileStore {
    static func item(_ file: FileRecord) -> Item {
        TableKeys.file(file.id).merging([
            "gsi1pk": .s("FILES#\(file.ownerID)"), "gsi1sk": .s(file.id.description), "blob_key": .s(file.key.value),
            "size": .int(file.size), "content_type": .s(file.contentType), "filename": .s(file.filename), "owner_id": .s(file.ownerID),
            "metadata": .m(file.metadata.mapValues { .s($0) }),
        ].merging(DynamoDBUserStore.time("created_at", file.createdAt)) { a, _ in a }) { a, _ in a }
    }

    static func file(from item: Item) throws -> FileRecord {
        guard let id = item["gsi1sk"]?.string.flatMap(ULID.init) else { throw SegmentError("a file item has no valid id") }
        let stored = try DynamoDBUserStore.text(item, "blob_key")
        guard let key = BlobKey(parsing: stored) else { throw SegmentError("file \(id) is stored with an invalid blob key \"\(stored)\"") }
        var metadata: [String: String] = [:]
        for (name, value) in item["metadata"]?.map ?? [:] {
            guard let text = value.string else { throw SegmentError("file \(id) has metadata that is not text") }
            metadata[name] = text
        }
        return FileRecord(
            id: id, key: key, size: try DynamoDBUserStore.number(item, "size"), contentType: try DynamoDBUserStore.text(item, "content_type"),
            filename: try DynamoDBUserStore.text(item, "filename"), ownerID: try DynamoDBUserStore.text(item, "owner_id"),
            metadata: metadata, createdAt: try DynamoDBUserStore.time(item, "created_at")
        )
    }
}
