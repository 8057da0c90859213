import GatewayApplication

/// Users and sessions in the DynamoDB table (see ``TableKeys``): `UserRepository` and `SessionRepository` with
/// the behaviour of the memory and SQLite stores, held across every gateway sharing the table.
///
/// - **Unique email and Firebase uid**: a user is written in one transaction with an email claim item and a
///   uid claim item, each created only if absent (`attribute_not_exists`). A change of email moves the claim in
///   the update's transaction. Lookups by email or uid read the claim, then the user (strongly consistent).
/// - **Optimistic locking**: an update or delete is conditional on the stored `version`; a failed condition
///   reports both versions from the item DynamoDB returns with the failure.
/// - **Domain events** go into the same transaction (``DynamoDBEventStore/commit(_:prepare:)``).
/// - **Listing** queries the collection index (`gsi1`: entity type `USER`, or a user's sessions) from the id
///   after the cursor, so pages are keyset pages whatever is added or removed meanwhile. The index is
///   eventually consistent on DynamoDB (a user created a moment ago may be missing from a listing; reads by
///   id, email and uid are always current).
public final class DynamoDBUserStore: UserRepository, SessionRepository {
    let db: DynamoDB
    public let events: DynamoDBEventStore

    init(db: DynamoDB, events: DynamoDBEventStore) {
        self.db = db
        self.events = events
    }

    // MARK: UserRepository

    public func create(_ user: User, recording pending: [PendingEvent]) async throws {
        try await storageErrors {
            _ = try await events.commit(pending) {
                .init(
                    writes: [
                        .put(Self.item(user), Expression(condition: "attribute_not_exists(pk)")),
                        .put(Self.claim(TableKeys.email(user.email.canonical), user.id), Expression(condition: "attribute_not_exists(pk)")),
                        .put(Self.claim(TableKeys.firebaseUID(user.firebaseUID), user.id), Expression(condition: "attribute_not_exists(pk)")),
                    ],
                    result: (),
                    explain: { failed in
                        switch failed.index {
                        case 0: DomainError(.alreadyExists, "user \(user.id) already exists")
                        case 1: DomainError(.alreadyExists, "a user with email \(user.email) already exists")
                        default: DomainError(.alreadyExists, "Firebase user \(user.firebaseUID) already has a user")
                        }
                    }
                )
            }
        }
    }

    public func user(id: UserID) async throws -> User? {
        try await storageErrors { try await db.get(TableKeys.user(id)).map(Self.user(from:)) }
    }

    public func user(email: Email) async throws -> User? {
        try await storageErrors { try await claimed(TableKeys.email(email.canonical)) }
    }

    public func user(firebaseUID: String) async throws -> User? {
        try await storageErrors { try await claimed(TableKeys.firebaseUID(firebaseUID)) }
    }

    /// The user a claim item names, if both exist.
    private func claimed(_ claim: Item) async throws -> User? {
        guard let id = try await db.get(claim)?["user_id"]?.string.flatMap(ULID.init) else { return nil }
        return try await db.get(TableKeys.user(UserID(id))).map(Self.user(from:))
    }

    public func update(_ user: User, expectedVersion: Int64, recording pending: [PendingEvent]) async throws {
        try await storageErrors {
            _ = try await events.commit(pending) {
                guard let item = try await db.get(TableKeys.user(user.id)) else { throw DomainError.notFound("user \(user.id)") }
                let stored = try Self.user(from: item)
                guard stored.version == expectedVersion else {
                    throw DomainError.versionConflict(expected: expectedVersion, actual: stored.version)
                }
                var writes: [DynamoDB.Write] = [.put(Self.item(user), Self.storedVersionIs(expectedVersion))]
                var meanings: [Int: DomainError] = [:]
                if stored.email.canonical != user.email.canonical {
                    meanings[writes.count] = DomainError(.alreadyExists, "a user with email \(user.email) already exists")
                    writes.append(.put(Self.claim(TableKeys.email(user.email.canonical), user.id), Expression(condition: "attribute_not_exists(pk)")))
                    writes.append(.delete(key: TableKeys.email(stored.email.canonical), Self.claimedBy(user.id)))
                }
                if stored.firebaseUID != user.firebaseUID {
                    meanings[writes.count] = DomainError(.alreadyExists, "Firebase user \(user.firebaseUID) already has a user")
                    writes.append(.put(Self.claim(TableKeys.firebaseUID(user.firebaseUID), user.id), Expression(condition: "attribute_not_exists(pk)")))
                    writes.append(.delete(key: TableKeys.firebaseUID(stored.firebaseUID), Self.claimedBy(user.id)))
                }
                let explained = meanings
                return .init(writes: writes, result: (), explain: { failed in
                    if failed.index == 0 {
                        // Changed or deleted since it was read: report what is stored now.
                        guard let current = failed.item?["version"]?.int64 else { return DomainError.notFound("user \(user.id)") }
                        return DomainError.versionConflict(expected: expectedVersion, actual: current)
                    }
                    return explained[failed.index]
                })
            }
        }
    }

    public func delete(id: UserID, expectedVersion: Int64?, recording pending: [PendingEvent]) async throws -> User {
        try await storageErrors {
            let removed = try await events.commit(pending) {
                guard let item = try await db.get(TableKeys.user(id)) else { throw DomainError.notFound("user \(id)") }
                let stored = try Self.user(from: item)
                if let expectedVersion, stored.version != expectedVersion {
                    throw DomainError.versionConflict(expected: expectedVersion, actual: stored.version)
                }
                return .init(
                    writes: [
                        .delete(key: TableKeys.user(id), Self.storedVersionIs(stored.version)),
                        .delete(key: TableKeys.email(stored.email.canonical), Self.claimedBy(id)),
                        .delete(key: TableKeys.firebaseUID(stored.firebaseUID), Self.claimedBy(id)),
                    ],
                    result: stored,
                    explain: { failed in
                        guard failed.index == 0 else { return nil }
                        guard let current = failed.item?["version"]?.int64 else { return DomainError.notFound("user \(id)") }
                        // Changed since it was read: with a version asked for, that is a conflict; without, read again.
                        return expectedVersion.map { DomainError.versionConflict(expected: $0, actual: current) }
                    }
                )
            }.result
            // Its sessions go after it (they are not part of the user's transaction, which holds at most 100 items).
            var sessions: [Item] = []
            var startKey: Item?
            repeat {
                let page = try await db.query(
                    index: TableKeys.collectionIndex,
                    Expression(keyCondition: "gsi1pk = :p", values: [":p": .s("SESSIONS#\(id)")]), limit: 500, startKey: startKey
                )
                sessions += page.items.compactMap { item in item["pk"].flatMap { pk in item["sk"].map { ["pk": pk, "sk": $0] } } }
                startKey = page.lastEvaluatedKey
            } while startKey != nil
            try await db.deleteAll(sessions)
            return removed
        }
    }

    public func list(after: UserID?, limit: Int, activeOnly: Bool) async throws -> [User] {
        try await storageErrors {
            try await db.collection("USER", after: after?.ulid, limit: limit, filter: activeOnly ? ("is_active = :yes", [":yes": .bool(true)]) : nil).map(Self.user(from:))
        }
    }

    public func count(activeOnly: Bool) async throws -> Int64 {
        try await storageErrors {
            var expression = Expression(keyCondition: "gsi1pk = :p", values: [":p": .s("USER")])
            if activeOnly {
                expression.filter = "is_active = :yes"
                expression.values[":yes"] = .bool(true)
            }
            var total: Int64 = 0
            var startKey: Item?
            repeat {
                let page = try await db.query(index: TableKeys.collectionIndex, expression, startKey: startKey, countOnly: true)
                total += Int64(page.count)
                startKey = page.lastEvaluatedKey
            } while startKey != nil
            return total
        }
    }

    // MARK: SessionRepository

    public func create(_ session: Session) async throws {
        try await storageErrors {
            _ = try await events.commit([]) {
                .init(
                    writes: [
                        .check(key: TableKeys.user(session.userID), Expression(condition: "attribute_exists(pk)")),
                        .put(Self.item(session), Expression(condition: "attribute_not_exists(pk)")),
                    ],
                    result: (),
                    explain: { failed in
                        failed.index == 0
                            ? DomainError.notFound("user \(session.userID)")
                            : DomainError(.alreadyExists, "session \(session.id) already exists")
                    }
                )
            }
        }
    }

    public func session(id: ULID) async throws -> Session? {
        try await storageErrors { try await db.get(TableKeys.session(id)).map(Self.session(from:)) }
    }

    public func list(userID: UserID, after: ULID?, limit: Int, includeRevoked: Bool) async throws -> [Session] {
        try await storageErrors {
            try await db.collection("SESSIONS#\(userID)", after: after, limit: limit, filter: includeRevoked ? nil : ("revoked = :no", [":no": .bool(false)]))
                .map(Self.session(from:))
        }
    }

    public func revoke(id: ULID) async throws -> Session {
        try await storageErrors {
            do {
                guard let item = try await db.update(
                    TableKeys.session(id),
                    Expression(condition: "attribute_exists(pk)", update: "SET revoked = :yes", values: [":yes": .bool(true)]),
                    returnNew: true
                ) else { throw DomainError.notFound("session \(id)") }
                return try Self.session(from: item)
            } catch is ConditionFailed {
                throw DomainError.notFound("session \(id)")
            }
        }
    }
}

// MARK: Items

extension DynamoDBUserStore {
    static func storedVersionIs(_ version: Int64) -> Expression {
        Expression(condition: "#version = :version", names: ["#version": "version"], values: [":version": .int(version)])
    }

    static func claimedBy(_ id: UserID) -> Expression {
        Expression(condition: "user_id = :id", values: [":id": .s(id.description)])
    }

    static func claim(_ key: Item, _ id: UserID) -> Item {
        key.merging(["user_id": .s(id.description)]) { a, _ in a }
    }

    static func item(_ user: User) -> Item {
        TableKeys.user(user.id).merging([
            "gsi1pk": .s("USER"), "gsi1sk": .s(user.id.description), "email": .s(user.email.value),
            "display_name": .s(user.displayName.value), "photo_url": .s(user.photoURL.value), "firebase_uid": .s(user.firebaseUID),
            "is_active": .bool(user.isActive), "version": .int(user.version),
        ].merging(time("created_at", user.createdAt)) { a, _ in a }.merging(time("updated_at", user.updatedAt)) { a, _ in a }) { a, _ in a }
    }

    static func user(from item: Item) throws -> User {
        guard let id = item["gsi1sk"]?.string.flatMap(ULID.init) else { throw SegmentError("a user item has no valid id") }
        do {
            return User(
                id: UserID(id), email: try Email(try text(item, "email")), displayName: try DisplayName(try text(item, "display_name")),
                photoURL: try PhotoURL(try text(item, "photo_url")), firebaseUID: try text(item, "firebase_uid"),
                isActive: item["is_active"]?.boolean ?? true, version: try number(item, "version"),
                createdAt: try time(item, "created_at"), updatedAt: try time(item, "updated_at")
            )
        } catch let error as DomainError {
            throw SegmentError("user \(id) is stored with an invalid value: \(error.message)")
        }
    }

    static func item(_ session: Session) -> Item {
        TableKeys.session(session.id).merging([
            "gsi1pk": .s("SESSIONS#\(session.userID)"), "gsi1sk": .s(session.id.description), "user_id": .s(session.userID.description),
            "device": .s(session.device.value), "revoked": .bool(session.revoked),
        ].merging(time("created_at", session.createdAt)) { a, _ in a }.merging(time("expires_at", session.expiresAt)) { a, _ in a }) { a, _ in a }
    }

    static func session(from item: Item) throws -> Session {
        guard let id = item["gsi1sk"]?.string.flatMap(ULID.init), let user = item["user_id"]?.string.flatMap(ULID.init) else {
            throw SegmentError("a session item has no valid id")
        }
        do {
            return Session(
                id: id, userID: UserID(user), device: try DeviceLabel(try text(item, "device")), createdAt: try time(item, "created_at"),
                expiresAt: try time(item, "expires_at"), revoked: item["revoked"]?.boolean ?? false
            )
        } catch let error as DomainError {
            throw SegmentError("session \(id) is stored with an invalid value: \(error.message)")
        }
    }

    /// A time as two numbers, seconds and nanoseconds: exact for any time.
    static func time(_ name: String, _ time: UnixTime) -> Item {
        ["\(name)_s": .int(time.seconds), "\(name)_ns": .int(Int64(time.nanoseconds))]
    }

    static func time(_ item: Item, _ name: String) throws -> UnixTime {
        let seconds = try number(item, "\(name)_s")
        let nanoseconds = try number(item, "\(name)_ns")
        guard (0..<1_000_000_000).contains(nanoseconds) else { throw SegmentError("\(name)_ns is out of range") }
        return UnixTime(seconds: seconds, nanoseconds: Int32(nanoseconds))
    }

    static func text(_ item: Item, _ name: String) throws -> String {
        guard let text = item[name]?.string else { throw SegmentError("an item lacks the string \(name)") }
        return text
    }

    static func number(_ item: Item, _ name: String) throws -> Int64 {
        guard let value = item[name]?.int64 else { throw SegmentError("an item lacks the number \(name)") }
        return value
    }
}
