/// An event as a publisher submits it, validated: a type, the aggregate it is about, an opaque payload,
/// attributes, and an optional idempotency key.
public struct NewEvent: Sendable, Hashable {
    public var type: String
    public var aggregateID: String
    public var payload: [UInt8]
    public var contentType: String
    public var attributes: [String: String]
    /// Publishing again with the same key (by the same publisher) returns the first event instead.
    public var idempotencyKey: String?

    public static let maximumPayloadBytes = 1 << 20
    public static let maximumAttributes = 64

    /// Validates every field; `field` prefixes the names in errors (e.g. `events[3].`). Publishers may not use
    /// the gateway's own domain event types (`DomainEvent.reservedTypes`), so consumers can trust those;
    /// only the gateway passes `reservedTypeAllowed`.
    public init(
        type: String, aggregateID: String, payload: [UInt8], contentType: String = "", attributes: [String: String] = [:],
        idempotencyKey: String? = nil, field prefix: String = "event.", reservedTypeAllowed: Bool = false
    ) throws(DomainError) {
        try Self.check(type, 1...128, prefix + "type", allowed: Self.isNameByte)
        guard reservedTypeAllowed || !DomainEvent.reservedTypes.contains(type) else {
            throw .invalid(prefix + "type", "\"\(type)\" is reserved for the gateway's own domain events")
        }
        try Self.check(aggregateID, 0...256, prefix + "aggregate_id")
        guard payload.count <= Self.maximumPayloadBytes else {
            throw .invalid(prefix + "payload", "is larger than \(Self.maximumPayloadBytes) bytes")
        }
        try Self.check(contentType, 0...256, prefix + "content_type")
        guard attributes.count <= Self.maximumAttributes else {
            throw .invalid(prefix + "attributes", "has more than \(Self.maximumAttributes) entries")
        }
        for (key, value) in attributes {
            try Self.check(key, 1...128, prefix + "attributes", allowed: Self.isNameByte)
            try Self.check(value, 0...1024, prefix + "attributes[\(key)]")
        }
        if let idempotencyKey {
            try Self.check(idempotencyKey, 1...128, prefix + "idempotency_key")
        }
        self.type = type
        self.aggregateID = aggregateID
        self.payload = payload
        self.contentType = contentType
        self.attributes = attributes
        self.idempotencyKey = idempotencyKey
    }

    /// Letters, digits and `.`, `_`, `-`, `/`, `:` — what event types and attribute names are made of.
    private static func isNameByte(_ b: UInt8) -> Bool {
        (UInt8(ascii: "a")...UInt8(ascii: "z")).contains(b | 0x20) || (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(b)
            || b == UInt8(ascii: ".") || b == UInt8(ascii: "_") || b == UInt8(ascii: "-") || b == UInt8(ascii: "/")
            || b == UInt8(ascii: ":")
    }

    private static func check(
        _ text: String, _ length: ClosedRange<Int>, _ field: String, allowed: ((UInt8) -> Bool)? = nil
    ) throws(DomainError) {
        let count = text.utf8.count
        if count == 0 && length.lowerBound > 0 { throw .invalid(field, "is required") }
        guard length.contains(count) else { throw .invalid(field, "must be at most \(length.upperBound) bytes") }
        if let allowed, !text.utf8.allSatisfy(allowed) {
            throw .invalid(field, "may contain only letters, digits and . _ - / :")
        }
        if allowed == nil && text.containsControlCharacter { throw .invalid(field, "must not contain control characters") }
    }
}

/// An event in the log: what was published, plus its id, its place in the global order, who published it
/// and when it was stored.
public struct RecordedEvent: Sendable, Hashable {
    public var id: ULID
    /// Global order, from 1, without gaps between committed events.
    public var sequence: Int64
    public var event: NewEvent
    /// The Firebase uid of the publisher (for domain events, of the account the changed user belongs to).
    public var publisher: String
    public var recordedAt: UnixTime

    public init(id: ULID, sequence: Int64, event: NewEvent, publisher: String, recordedAt: UnixTime) {
        self.id = id
        self.sequence = sequence
        self.event = event
        self.publisher = publisher
        self.recordedAt = recordedAt
    }
}

/// Which events a reader wants; empty sets match everything.
public struct EventFilter: Sendable, Hashable {
    public var types: Set<String>
    public var aggregateIDs: Set<String>
    /// Only events of this publisher (non-admin readers see only their own).
    public var publisher: String?

    public init(types: Set<String> = [], aggregateIDs: Set<String> = [], publisher: String? = nil) {
        self.types = types
        self.aggregateIDs = aggregateIDs
        self.publisher = publisher
    }

    public func matches(_ event: RecordedEvent) -> Bool {
        (types.isEmpty || types.contains(event.event.type))
            && (aggregateIDs.isEmpty || aggregateIDs.contains(event.event.aggregateID))
            && (publisher.map { $0 == event.publisher } ?? true)
    }
}
