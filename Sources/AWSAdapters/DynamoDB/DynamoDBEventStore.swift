import GatewayApplication
import OpenSSLCrypto
import Synchronization

/// The event log in the DynamoDB table: `EventStore`, shared by every gateway using the table.
///
/// **A gap-free global sequence.** The log's head item holds the last sequence number. An append reads it
/// (N), and writes in **one transaction** the head (`last = N + k`, on condition that it still is N), the
/// events (N+1 … N+k, as one segment item), their idempotency-key items (on condition that none exists) and
/// the entity changes the events record (the outbox). Two appends racing from two gateways cannot both
/// commit: the loser sees the condition fail, re-reads the head and tries again. So sequence numbers are
/// assigned in commit order without gaps, idempotency keys hold across instances, and a change is never
/// stored without its events. Appends from one process take turns (``AsyncLock``), so they do not conflict
/// with each other, and the head is cached between them (re-read only after another gateway moved it).
///
/// **Reading** walks the segment partitions from the cursor on (strongly consistent queries), filters in the
/// gateway, and stops at the first hole: DynamoDB may show a transaction's items to a query one by one, so a
/// later segment can be visible a moment before an earlier one. Stopping there (and trying again shortly)
/// keeps "a reader that has seen N has seen everything up to N".
///
/// **Live subscriptions across instances**: while a subscriber waits, the store reads the head every
/// `pollInterval` and wakes subscribers when another gateway appended (`appends`).
public final class DynamoDBEventStore: EventStore {
    public let appends = AppendSignal()
    let db: DynamoDB
    private let writers = AsyncLock()
    private let cachedHead = Mutex<Int64?>(nil)
    private let poller = Mutex<Task<Void, Never>?>(nil)
    public let pollInterval: Duration

    /// Bytes of encoded events per segment item (DynamoDB items hold at most 400 KB).
    static let partBytes = 350_000
    /// Attempts of one append against other gateways' appends.
    static let maximumAttempts = 64

    init(db: DynamoDB, pollInterval: Duration) {
        self.db = db
        self.pollInterval = pollInterval
        let task = Task { [weak self] in
            while !Task.isCancelled {
                try? await Task.sleep(for: pollInterval)
                guard let self else { return }
                await self.poll()
            }
        }
        poller.withLock { $0 = task }
    }

    deinit {
        poller.withLock { $0?.cancel() }
    }

    /// Stops watching the head for other gateways' appends.
    func close() {
        poller.withLock { $0?.cancel() }
    }

    private func poll() async {
        guard appends.hasWaiters, let head = try? await readHead() else { return }
        appends.appended(through: head)
    }

    // MARK: EventStore

    public func append(_ events: [PendingEvent]) async throws -> [AppendedEvent] {
        try await storageErrors {
            try await commit(events) { Prepared(result: ()) }.appended
        }
    }

    public func read(after: Int64, limit: Int, filter: EventFilter) async throws -> EventBatch {
        try await storageErrors {
            for attempt in 0..<5 {
                let (batch, hole) = try await readOnce(after: after, limit: limit, filter: filter)
                // A hole closes within milliseconds (a transaction still becoming visible): look again shortly
                // rather than make the reader spin.
                guard hole, batch.events.isEmpty, attempt < 4 else { return batch }
                try await Task.sleep(for: .milliseconds(10 << attempt))
            }
            preconditionFailure("unreachable")
        }
    }

    public func lastSequence() async throws -> Int64 {
        try await storageErrors { try await readHead() }
    }

    // MARK: Appending (also used by the user and file stores for their domain events)

    /// What a store wants committed with its events, read afresh on every attempt.
    struct Prepared<T: Sendable>: Sendable {
        var writes: [DynamoDB.Write] = []
        var result: T
        /// What a failed condition of one of `writes` means to the caller; nil when the state merely moved
        /// since `prepare` read it (the commit then reads and tries again).
        var explain: @Sendable (ConditionFailed) -> (any Error)? = { _ in nil }
    }

    /// Commits what `prepare` returns (entity writes, read afresh on every attempt) together with `events`, in
    /// one transaction. A failed condition of an entity write comes back as ``ConditionFailed`` with the
    /// write's index for the caller to explain; conflicts on the log are retried here.
    func commit<T: Sendable>(
        _ events: [PendingEvent], prepare: () async throws -> Prepared<T>
    ) async throws -> (result: T, appended: [AppendedEvent]) {
        try await writers.withLock {
            var attempt = 0
            while true {
                attempt += 1
                try Task.checkCancellation()
                let prepared = try await prepare()
                do {
                    return (prepared.result, try await commitOnce(events, writes: prepared.writes))
                } catch let failed as ConditionFailed {
                    if let error = prepared.explain(failed) { throw error }
                } catch is LogMoved {
                    cachedHead.withLock { $0 = nil }
                } catch is TransactionConflict {
                    cachedHead.withLock { $0 = nil }
                }
                guard attempt < Self.maximumAttempts else {
                    throw DomainError(.unavailable, "the event log is too busy: \(attempt) attempts met concurrent appends; try again")
                }
                try await Task.sleep(for: .milliseconds(Int.random(in: 1...min(200, 5 << min(attempt, 6)))))
            }
        }
    }

    /// The head moved (another gateway appended) or an idempotency key was just taken: read again.
    private struct LogMoved: Error {}

    private func commitOnce(_ events: [PendingEvent], writes: [DynamoDB.Write]) async throws -> [AppendedEvent] {
        let token = Hex.lowercase(try Digest.randomBytes(16))
        guard !events.isEmpty else {
            if !writes.isEmpty { try await db.transact(writes, token: token) }
            return []
        }
        let cached = cachedHead.withLock { $0 }
        let head = if let cached { cached } else { try await readHead() }
        // Idempotency: a key its publisher used before (stored, or earlier in this batch) gives that event back.
        var stored: [Int: RecordedEvent] = [:]
        var repeatOf: [Int: Int] = [:]
        var firstUse: [String: Int] = [:]
        var fresh: [Int] = []
        for (index, pending) in events.enumerated() {
            if let key = pending.event.idempotencyKey {
                let id = "\(pending.publisher.utf8.count)#\(pending.publisher)#\(key)"
                if let earlier = firstUse[id] {
                    repeatOf[index] = earlier
                    continue
                }
                firstUse[id] = index
                if let event = try await storedEvent(publisher: pending.publisher, key: key) {
                    stored[index] = event
                    continue
                }
            }
            fresh.append(index)
        }
        let first = head + 1
        if fresh.isEmpty {
            if !writes.isEmpty { try await db.transact(writes, token: token) }
        } else {
            let last = head + Int64(fresh.count)
            var log: [DynamoDB.Write] = [.update(key: TableKeys.eventLogHead, Expression(
                condition: head == 0 ? "attribute_not_exists(pk) OR #last = :old" : "#last = :old",
                update: "SET #last = :new", names: ["#last": "last"], values: [":old": .int(head), ":new": .int(last)]
            ))]
            log += segmentWrites(fresh.map { events[$0] }, first: first, last: last)
            for (position, pending) in fresh.map({ events[$0] }).enumerated() {
                guard let key = pending.event.idempotencyKey else { continue }
                var item = TableKeys.idempotency(publisher: pending.publisher, key: key)
                item["sequence"] = .int(first + Int64(position))
                item["segment"] = .int(last)
                log.append(.put(item, Expression(condition: "attribute_not_exists(pk)")))
            }
            let all = writes + log
            guard all.count <= DynamoDB.maximumTransactionActions else {
                throw DomainError.invalid("events", """
                    needs \(all.count) items in one DynamoDB transaction (at most \(DynamoDB.maximumTransactionActions)): \
                    publish fewer events with idempotency keys per batch
                    """)
            }
            guard all.reduce(0, { $0 + $1.size }) <= DynamoDB.maximumTransactionBytes else {
                throw DomainError(.resourceExhausted, "events: the batch is larger than one DynamoDB transaction holds (4 MB); publish it in smaller batches")
            }
            let firstID = events[fresh[0]].id
            do {
                try await db.transact(all, token: token)
            } catch let failed as ConditionFailed {
                // A resent transaction can fail its conditions because its first send was applied after all
                // (the reply was lost): then it is done, not refused.
                guard try await applied(last: last, firstID: firstID) else {
                    if failed.index >= writes.count { throw LogMoved() }
                    throw failed
                }
            } catch let error as AWSError where error.kind == .transport {
                // No reply: it may have been applied. Look before reporting a failure.
                guard (try? await applied(last: last, firstID: firstID)) == true else { throw error }
            }
            cachedHead.withLock { $0 = last }
            appends.appended(through: last)
        }
        var appended: [AppendedEvent] = []
        for (index, pending) in events.enumerated() {
            if let event = stored[index] {
                appended.append(AppendedEvent(event: event, duplicate: true))
            } else if let earlier = repeatOf[index] {
                appended.append(AppendedEvent(event: appended[earlier].event, duplicate: true))
            } else {
                let sequence = first + Int64(fresh.firstIndex(of: index)!)
                appended.append(AppendedEvent(
                    event: RecordedEvent(id: pending.id, sequence: sequence, event: pending.event, publisher: pending.publisher, recordedAt: pending.recordedAt),
                    duplicate: false
                ))
            }
        }
        return appended
    }

    /// The segment item (and its continuation items) holding `events`.
    private func segmentWrites(_ events: [PendingEvent], first: Int64, last: Int64) -> [DynamoDB.Write] {
        let data = EventSegmentCoding.encode(events)
        let parts = stride(from: 0, to: max(data.count, 1), by: Self.partBytes).map { Array(data[$0..<min(data.count, $0 + Self.partBytes)]) }
        var item = TableKeys.segment(last: last)
        item["first"] = .int(first)
        item["last"] = .int(last)
        item["parts"] = .int(parts.count - 1)
        item["first_id"] = .s(events[0].id.description)
        item["data"] = .b(parts.first ?? [])
        var writes: [DynamoDB.Write] = [.put(item, Expression(condition: "attribute_not_exists(pk)"))]
        for (number, part) in parts.enumerated().dropFirst() {
            var continuation = TableKeys.segmentPart(last: last, part: number)
            continuation["data"] = .b(part)
            writes.append(.put(continuation, Expression(condition: "attribute_not_exists(pk)")))
        }
        return writes
    }

    /// Whether the segment ending at `last` is stored and begins with the event `firstID`: an append of ours,
    /// committed.
    private func applied(last: Int64, firstID: ULID) async throws -> Bool {
        try await db.get(TableKeys.segment(last: last))?["first_id"]?.string == firstID.description
    }

    func readHead() async throws -> Int64 {
        let head = try await db.get(TableKeys.eventLogHead)?["last"]?.int64 ?? 0
        return head
    }

    /// The stored event of an idempotency key, if the key was used.
    private func storedEvent(publisher: String, key: String) async throws -> RecordedEvent? {
        guard let item = try await db.get(TableKeys.idempotency(publisher: publisher, key: key)),
            let sequence = item["sequence"]?.int64, let last = item["segment"]?.int64
        else { return nil }
        guard let segment = try await db.get(TableKeys.segment(last: last)),
            let event = try await events(of: segment).first(where: { $0.sequence == sequence })
        else { throw SegmentError("idempotency key of \(publisher) names event \(sequence), which is not stored") }
        return event
    }

    /// The events of a segment item, its continuation items fetched as needed.
    private func events(of item: Item) async throws -> [RecordedEvent] {
        guard let first = item["first"]?.int64, let last = item["last"]?.int64, var data = item["data"]?.bytes else {
            throw SegmentError("an event segment lacks first, last or data")
        }
        let parts = Int(item["parts"]?.int64 ?? 0)
        if parts > 0 {
            for part in 1...parts {
                guard let bytes = try await db.get(TableKeys.segmentPart(last: last, part: part))?["data"]?.bytes else {
                    throw SegmentError("event segment \(last) lacks part \(part)")
                }
                data += bytes
            }
        }
        let events = try EventSegmentCoding.decode(data, first: first)
        guard events.count == last - first + 1 else { throw SegmentError("event segment \(last) holds \(events.count) events, not \(last - first + 1)") }
        return events
    }

    /// One pass over the log after `after`; `hole` when it stopped at a sequence number not visible yet.
    private func readOnce(after: Int64, limit: Int, filter: EventFilter) async throws -> (EventBatch, hole: Bool) {
        let head = try await readHead()
        var scanned = after
        var found: [RecordedEvent] = []
        guard limit > 0, head > after else { return (EventBatch(events: [], scannedThrough: max(after, 0)), false) }
        var partition = (after + 1) / TableKeys.sequencesPerPartition
        var startKey: Item?
        while scanned < head {
            let page = try await db.query(
                Expression(
                    keyCondition: "pk = :p AND sk >= :from",
                    values: [":p": .s("EVENTS#" + TableKeys.padded(partition, 9)), ":from": .s(TableKeys.padded(scanned + 1, 19))]
                ),
                limit: 100, startKey: startKey
            )
            for item in page.items {
                let segment = try await events(of: item)
                guard let first = segment.first?.sequence, first <= scanned + 1 else {
                    return (EventBatch(events: found, scannedThrough: scanned), true)
                }
                for event in segment where event.sequence > scanned {
                    scanned = event.sequence
                    guard filter.matches(event) else { continue }
                    found.append(event)
                    if found.count == limit { return (EventBatch(events: found, scannedThrough: scanned), false) }
                }
            }
            if let next = page.lastEvaluatedKey {
                startKey = next
            } else {
                startKey = nil
                partition += 1
                if partition * TableKeys.sequencesPerPartition > head { break }
            }
        }
        return (EventBatch(events: found, scannedThrough: scanned), scanned < head)
    }
}

/// Runs a store operation, turning AWS failures into what the caller of the RPC should see (``AWSError/domainError``).
func storageErrors<T>(_ body: () async throws -> T) async throws -> T {
    do {
        return try await body()
    } catch let error as AWSError {
        throw error.domainError
    }
}
