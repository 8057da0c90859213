import GatewayApplication

/// The events of one append as one binary value (a segment): a version byte, then per event its id, type,
/// aggregate id, payload, content type, attributes, idempotency key, publisher and time, each length-prefixed
/// (4 bytes, big-endian). Sequence numbers are implicit: the segment's first plus the index. Decoding checks
/// every length, so a damaged item is an error, not a crash.
enum EventSegmentCoding {
    static let version: UInt8 = 1

    static func encode(_ events: [PendingEvent]) -> [UInt8] {
        var out: [UInt8] = [version]
        func append(_ bytes: some Collection<UInt8>) {
            withUnsafeBytes(of: UInt32(bytes.count).bigEndian) { out += $0 }
            out += bytes
        }
        for pending in events {
            let event = pending.event
            append(pending.id.bytes)
            append(event.type.utf8)
            append(event.aggregateID.utf8)
            append(event.payload)
            append(event.contentType.utf8)
            withUnsafeBytes(of: UInt32(event.attributes.count).bigEndian) { out += $0 }
            for (key, value) in event.attributes.sorted(by: { $0.key < $1.key }) {
                append(key.utf8)
                append(value.utf8)
            }
            if let key = event.idempotencyKey {
                out.append(1)
                append(key.utf8)
            } else {
                out.append(0)
            }
            append(pending.publisher.utf8)
            withUnsafeBytes(of: pending.recordedAt.totalNanoseconds.bigEndian) { out += $0 }
        }
        return out
    }

    static func decode(_ bytes: [UInt8], first: Int64) throws -> [RecordedEvent] {
        var reader = Reader(bytes: bytes)
        guard try reader.byte() == version else { throw SegmentError("an event segment has an unknown version") }
        var events: [RecordedEvent] = []
        while !reader.atEnd {
            guard let id = ULID(bytes: try reader.field()) else { throw SegmentError("an event id is not 16 bytes") }
            let type = try reader.text()
            let aggregate = try reader.text()
            let payload = try reader.field()
            let contentType = try reader.text()
            var attributes: [String: String] = [:]
            for _ in 0..<(try reader.uint32()) {
                let key = try reader.text()
                attributes[key] = try reader.text()
            }
            let idempotencyKey = try reader.byte() == 1 ? try reader.text() : nil
            let publisher = try reader.text()
            let nanoseconds = Int64(bitPattern: try reader.uint64())
            let event: NewEvent
            do {
                event = try NewEvent(
                    type: type, aggregateID: aggregate, payload: payload, contentType: contentType, attributes: attributes,
                    idempotencyKey: idempotencyKey, reservedTypeAllowed: true
                )
            } catch {
                throw SegmentError("event \(id) fails validation: \(error.message)")
            }
            events.append(RecordedEvent(
                id: id, sequence: first + Int64(events.count), event: event, publisher: publisher,
                recordedAt: UnixTime(totalNanoseconds: nanoseconds)
            ))
        }
        return events
    }

    private struct Reader {
        let bytes: [UInt8]
        var index = 0

        var atEnd: Bool { index >= bytes.count }

        mutating func byte() throws -> UInt8 {
            guard index < bytes.count else { throw SegmentError("an event segment is truncated") }
            defer { index += 1 }
            return bytes[index]
        }

        mutating func uint32() throws -> UInt32 {
            guard bytes.count - index >= 4 else { throw SegmentError("an event segment is truncated") }
            defer { index += 4 }
            return bytes[index..<index + 4].reduce(0) { $0 << 8 | UInt32($1) }
        }

        mutating func uint64() throws -> UInt64 {
            guard bytes.count - index >= 8 else { throw SegmentError("an event segment is truncated") }
            defer { index += 8 }
            return bytes[index..<index + 8].reduce(0) { $0 << 8 | UInt64($1) }
        }

        mutating func field() throws -> [UInt8] {
            let length = Int(try uint32())
            guard bytes.count - index >= length else { throw SegmentError("an event segment is truncated") }
            defer { index += length }
            return Array(bytes[index..<index + length])
        }

        mutating func text() throws -> String {
            String(decoding: try field(), as: UTF8.self)
        }
    }
}

/// A stored item that cannot be read back: the store is damaged or was written by something else.
struct SegmentError: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}
