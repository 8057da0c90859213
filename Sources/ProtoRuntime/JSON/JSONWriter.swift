/// Builds compact JSON text (no insignificant whitespace) into a UTF-8 byte buffer.
///
/// Commas between array elements and object members are inserted automatically. The writer does not
/// validate nesting: callers must balance `begin`/`end` calls and call `key(_:)` before each object member.
public struct JSONWriter: Sendable {
    /// The UTF-8 JSON text written so far.
    public private(set) var bytes: [UInt8] = []
    /// Whether the next value, key or container needs a leading comma.
    private var needsComma = false

    /// Creates an empty writer.
    public init() {}

    /// The JSON text written so far, as a string.
    public var string: String {
        String(decoding: bytes, as: UTF8.self)
    }

    /// Starts an object (`{`).
    public mutating func beginObject() {
        separate()
        bytes.append(UInt8(ascii: "{"))
        needsComma = false
    }

    /// Ends the current object (`}`).
    public mutating func endObject() {
        bytes.append(UInt8(ascii: "}"))
        needsComma = true
    }

    /// Starts an array (`[`).
    public mutating func beginArray() {
        separate()
        bytes.append(UInt8(ascii: "["))
        needsComma = false
    }

    /// Ends the current array (`]`).
    public mutating func endArray() {
        bytes.append(UInt8(ascii: "]"))
        needsComma = true
    }

    /// Writes an object member name followed by `:`; the next call must write the member's value.
    public mutating func key(_ name: String) {
        separate()
        appendQuoted(name)
        bytes.append(UInt8(ascii: ":"))
        needsComma = false
    }

    /// Writes a JSON string, escaping `"`, `\` and control characters.
    public mutating func string(_ s: String) {
        separate()
        appendQuoted(s)
        needsComma = true
    }

    /// Writes `true` or `false`.
    public mutating func bool(_ b: Bool) {
        appendValue(b ? "true" : "false")
    }

    /// Writes `null`.
    public mutating func null() {
        appendValue("null")
    }

    /// Writes a number literal exactly as given; the caller guarantees it is a valid JSON number.
    public mutating func rawNumber(_ literal: String) {
        appendValue(literal)
    }

    /// Writes an `int32` as a bare JSON number.
    public mutating func int32(_ v: Int32) {
        appendDecimal(UInt64(v.magnitude), negative: v < 0, quoted: false)
    }

    /// Writes a `uint32` as a bare JSON number.
    public mutating func uint32(_ v: UInt32) {
        appendDecimal(UInt64(v), negative: false, quoted: false)
    }

    /// Writes an `int64` as a quoted decimal string, as proto3 JSON requires.
    public mutating func int64(_ v: Int64) {
        appendDecimal(v.magnitude, negative: v < 0, quoted: true)
    }

    /// Writes a `uint64` as a quoted decimal string, as proto3 JSON requires.
    public mutating func uint64(_ v: UInt64) {
        appendDecimal(v, negative: false, quoted: true)
    }

    /// Writes the shortest round-tripping decimal for a finite value, or `"NaN"`, `"Infinity"`, `"-Infinity"`.
    public mutating func float(_ v: Float) {
        if v.isFinite {
            appendValue(v.description)
        } else {
            string(nonFiniteName(isNaN: v.isNaN, isNegative: v < 0))
        }
    }

    /// Writes the shortest round-tripping decimal for a finite value, or `"NaN"`, `"Infinity"`, `"-Infinity"`.
    public mutating func double(_ v: Double) {
        if v.isFinite {
            appendValue(v.description)
        } else {
            string(nonFiniteName(isNaN: v.isNaN, isNegative: v < 0))
        }
    }

    /// Writes bytes as a quoted standard base64 string with padding.
    public mutating func bytes(_ b: [UInt8]) {
        separate()
        bytes.append(UInt8(ascii: "\""))
        Base64.append(b, to: &bytes, alphabet: .standard, padded: true)
        bytes.append(UInt8(ascii: "\""))
        needsComma = true
    }

    /// Writes a whole JSON tree; numbers are written as their stored literal text.
    ///
    /// Uses an explicit stack, so arbitrarily deep trees do not overflow the call stack.
    public mutating func value(_ v: JSONValue) {
        var pending: [PendingContainer] = []
        var next: JSONValue? = v
        while true {
            if let current = next {
                next = nil
                switch current {
                case .null: null()
                case .bool(let b): bool(b)
                case .number(let literal): rawNumber(literal)
                case .string(let s): string(s)
                case .array(let elements):
                    beginArray()
                    pending.append(.array(elements[...]))
                case .object(let object):
                    beginObject()
                    pending.append(.object(object.entries[...]))
                }
            }
            guard let last = pending.popLast() else { return }
            switch last {
            case .array(var rest):
                if let element = rest.popFirst() {
                    pending.append(.array(rest))
                    next = element
                } else {
                    endArray()
                }
            case .object(var rest):
                if let entry = rest.popFirst() {
                    pending.append(.object(rest))
                    key(entry.key)
                    next = entry.value
                } else {
                    endObject()
                }
            }
        }
    }

    // MARK: Internals

    private enum PendingContainer {
        case array(ArraySlice<JSONValue>)
        case object(ArraySlice<(key: String, value: JSONValue)>)
    }

    private mutating func separate() {
        if needsComma {
            bytes.append(UInt8(ascii: ","))
        }
    }

    private mutating func appendValue(_ literal: String) {
        separate()
        bytes.append(contentsOf: literal.utf8)
        needsComma = true
    }

    private func nonFiniteName(isNaN: Bool, isNegative: Bool) -> String {
        isNaN ? "NaN" : (isNegative ? "-Infinity" : "Infinity")
    }

    private mutating func appendDecimal(_ magnitude: UInt64, negative: Bool, quoted: Bool) {
        separate()
        if quoted { bytes.append(UInt8(ascii: "\"")) }
        if negative { bytes.append(UInt8(ascii: "-")) }
        // UInt64.max has 20 digits; fill a scratch buffer from the right.
        withUnsafeTemporaryAllocation(of: UInt8.self, capacity: 20) { digits in
            var position = digits.count
            var remaining = magnitude
            repeat {
                position -= 1
                digits[position] = UInt8(ascii: "0") + UInt8(truncatingIfNeeded: remaining % 10)
                remaining /= 10
            } while remaining > 0
            bytes.append(contentsOf: UnsafeBufferPointer(rebasing: digits[position...]))
        }
        if quoted { bytes.append(UInt8(ascii: "\"")) }
        needsComma = true
    }

    /// Appends `"s"` with JSON escaping, copying runs of bytes that need no escaping in bulk.
    private mutating func appendQuoted(_ s: String) {
        bytes.append(UInt8(ascii: "\""))
        var text = s
        text.withUTF8 { utf8 in
            var runStart = 0
            for index in utf8.indices {
                let byte = utf8[index]
                guard byte < 0x20 || byte == UInt8(ascii: "\"") || byte == UInt8(ascii: "\\") else { continue }
                bytes.append(contentsOf: UnsafeBufferPointer(rebasing: utf8[runStart..<index]))
                bytes.append(UInt8(ascii: "\\"))
                switch byte {
                case UInt8(ascii: "\""), UInt8(ascii: "\\"): bytes.append(byte)
                case 0x0A: bytes.append(UInt8(ascii: "n"))
                case 0x09: bytes.append(UInt8(ascii: "t"))
                case 0x0D: bytes.append(UInt8(ascii: "r"))
                case 0x08: bytes.append(UInt8(ascii: "b"))
                case 0x0C: bytes.append(UInt8(ascii: "f"))
                default:
                    // Remaining control characters: \u00XX with lowercase hex.
                    let low = byte & 0x0F
                    bytes.append(contentsOf: [UInt8(ascii: "u"), UInt8(ascii: "0"), UInt8(ascii: "0"), UInt8(ascii: "0") + byte >> 4])
                    bytes.append(low < 10 ? UInt8(ascii: "0") + low : UInt8(ascii: "a") + low - 10)
                }
                runStart = index + 1
            }
            bytes.append(contentsOf: UnsafeBufferPointer(rebasing: utf8[runStart...]))
        }
        bytes.append(UInt8(ascii: "\""))
    }
}
