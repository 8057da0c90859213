import GatewayApplication

/// The single-table layout: every item has a partition key `pk` and a sort key `sk` (strings); one global
/// secondary index, `gsi1` (`gsi1pk`, `gsi1sk`, all attributes projected), lists collections in id order.
///
/// | item | pk | sk | gsi1pk / gsi1sk |
/// |---|---|---|---|
/// | user | `USER#<id>` | `USER#<id>` | `USER` / `<id>` (all users, by entity type) |
/// | email claim (unique email) | `EMAIL#<canonical email>` | `EMAIL` | |
/// | Firebase uid claim (one user per uid) | `UID#<uid>` | `UID` | |
/// | session | `SESSION#<id>` | `SESSION#<id>` | `SESSIONS#<user id>` / `<id>` |
/// | file record | `FILE#<id>` | `FILE#<id>` | `FILES#<owner uid>` / `<id>` |
/// | blob references | `BLOB#<key>` | `BLOB` | |
/// | event log head (last sequence) | `EVENTLOG` | `HEAD` | |
/// | event segment (one append) | `EVENTS#<last sequence ÷ 1000>` | `<last sequence, 19 digits>` | |
/// | segment continuation | `EVENTPART#<last sequence, 19 digits>` | `<part, 3 digits>` | |
/// | idempotency key | `IDEMPOTENCY#<publisher length>#<publisher>#<key>` | `IDEMPOTENCY` | |
/// | outbox cursor and lease | `OUTBOX#<consumer>` | `CURSOR` | |
/// | shared secret | `CONFIG#secret` | `CONFIG` | |
enum TableKeys {
    static let collectionIndex = "gsi1"

    static func key(_ pk: String, _ sk: String) -> Item { ["pk": .s(pk), "sk": .s(sk)] }

    static func user(_ id: UserID) -> Item { key("USER#\(id)", "USER#\(id)") }
    static func email(_ canonical: String) -> Item { key("EMAIL#\(canonical)", "EMAIL") }
    static func firebaseUID(_ uid: String) -> Item { key("UID#\(uid)", "UID") }
    static func session(_ id: ULID) -> Item { key("SESSION#\(id)", "SESSION#\(id)") }
    static func file(_ id: ULID) -> Item { key("FILE#\(id)", "FILE#\(id)") }
    static func blob(_ key: BlobKey) -> Item { TableKeys.key("BLOB#\(key.value)", "BLOB") }
    static let eventLogHead = key("EVENTLOG", "HEAD")
    static func outbox(_ consumer: String) -> Item { key("OUTBOX#\(consumer)", "CURSOR") }
    static let secret = key("CONFIG#secret", "CONFIG")

    /// Sequence numbers per event partition: a partition holds the segments whose last event falls in one
    /// thousand sequence numbers, so no partition grows without bound and a reader finds its place at once.
    static let sequencesPerPartition: Int64 = 1000

    static func segmentPartition(last: Int64) -> String { "EVENTS#" + padded(last / sequencesPerPartition, 9) }
    static func segment(last: Int64) -> Item { key(segmentPartition(last: last), padded(last, 19)) }
    static func segmentPart(last: Int64, part: Int) -> Item { key("EVENTPART#" + padded(last, 19), padded(Int64(part), 3)) }

    /// Length-prefixed, so no publisher and key pair can spell another.
    static func idempotency(publisher: String, key: String) -> Item {
        TableKeys.key("IDEMPOTENCY#\(publisher.utf8.count)#\(publisher)#\(key)", "IDEMPOTENCY")
    }

    static func padded(_ value: Int64, _ width: Int) -> String {
        let digits = String(value)
        return digits.count >= width ? digits : String(repeating: "0", count: width - digits.count) + digits
    }
}
