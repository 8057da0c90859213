/// An error describing why a JSON document was rejected.
public struct JSONError: Error, Sendable, Hashable, CustomStringConvertible {
    /// What is wrong, for example `expected ',' or '}'`.
    public var message: String
    /// The byte offset in the input where the problem was detected, if known.
    public var offset: Int?

    /// Creates an error with a message and an optional byte offset.
    public init(message: String, offset: Int? = nil) {
        self.message = message
        self.offset = offset
    }

    /// The full message, for example `invalid JSON at byte 17: expected ',' or '}'`.
    public var description: String {
        if let offset {
            return "invalid JSON at byte \(offset): \(message)"
        }
        return "invalid JSON: \(message)"
    }
}

/// A strict RFC 8259 JSON parser for untrusted input.
///
/// Rejects comments, trailing commas, leading zeros, non-finite literals, trailing garbage,
/// invalid UTF-8, unescaped control characters, unpaired surrogate escapes and duplicate object keys.
/// Parsing is iterative, so nesting deeper than `maxDepth` containers throws instead of overflowing the stack.
/// Keep `maxDepth` modest all the same: comparing, hashing and freeing a `JSONValue` recurse once per level.
public enum JSONParser {
    /// Parses one JSON document from UTF-8 bytes, allowing at most `maxDepth` nested arrays/objects.
    public static func parse(_ bytes: UnsafeRawBufferPointer, maxDepth: Int = 100) throws -> JSONValue {
        try bytes.withMemoryRebound(to: UInt8.self) { input in
            var parser = Parser(input: input, maxDepth: maxDepth)
            return try parser.parseDocument()
        }
    }

    /// Parses one JSON document from UTF-8 bytes, allowing at most `maxDepth` nested arrays/objects.
    public static func parse(_ bytes: [UInt8], maxDepth: Int = 100) throws -> JSONValue {
        try bytes.withUnsafeBytes { try parse($0, maxDepth: maxDepth) }
    }

    /// Parses one JSON document from a string, allowing at most `maxDepth` nested arrays/objects.
    public static func parse(_ text: String, maxDepth: Int = 100) throws -> JSONValue {
        var text = text
        return try text.withUTF8 { try parse(UnsafeRawBufferPointer($0), maxDepth: maxDepth) }
    }
}

/// Formats untrusted text for an error message: quoted, escaped and cut to a bounded length.
func quotedExcerpt(_ text: some StringProtocol) -> String {
    let limit = 64
    let prefix = text.prefix(limit)
    let quoted = String(prefix).debugDescription
    return prefix.endIndex < text.endIndex ? quoted + "…" : quoted
}

private enum ASCII {
    static let tab: UInt8 = 0x09, newline: UInt8 = 0x0A, carriageReturn: UInt8 = 0x0D, space: UInt8 = 0x20
    static let quote: UInt8 = 0x22, plus: UInt8 = 0x2B, comma: UInt8 = 0x2C, minus: UInt8 = 0x2D
    static let dot: UInt8 = 0x2E, slash: UInt8 = 0x2F, zero: UInt8 = 0x30, nine: UInt8 = 0x39, colon: UInt8 = 0x3A
    static let openBracket: UInt8 = 0x5B, backslash: UInt8 = 0x5C, closeBracket: UInt8 = 0x5D
    static let openBrace: UInt8 = 0x7B, closeBrace: UInt8 = 0x7D
}

/// An array or object whose members are still being parsed.
private struct Frame {
    var isObject: Bool
    var elements: [JSONValue] = []
    var entries: [(key: String, value: JSONValue)] = []
    /// Keys seen so far, built only once an object has enough members for linear search to be slow.
    var keySet: Set<String>?
    var pendingKey = ""
}

private struct Parser {
    let input: UnsafeBufferPointer<UInt8>
    let maxDepth: Int
    var index = 0
    var stack: [Frame] = []

    init(input: UnsafeBufferPointer<UInt8>, maxDepth: Int) {
        self.input = input
        self.maxDepth = maxDepth
    }

    mutating func parseDocument() throws(JSONError) -> JSONValue {
        skipWhitespace()
        while true {
            // Either a complete value, or nil when a non-empty container was opened.
            guard var value = try parseValueStart() else { continue }
            // Attach the value to the enclosing containers, closing those that end here.
            while true {
                skipWhitespace()
                guard !stack.isEmpty else {
                    if let byte = peek() {
                        throw JSONError(message: "unexpected \(describe(byte)) after the JSON value", offset: index)
                    }
                    return value
                }
                let top = stack.count - 1
                let byte = peek()
                if stack[top].isObject {
                    stack[top].entries.append((key: stack[top].pendingKey, value: value))
                    if byte == ASCII.comma {
                        index += 1
                        skipWhitespace()
                        try parseMemberKey()
                        break
                    }
                    guard byte == ASCII.closeBrace else { throw expected("',' or '}'") }
                    index += 1
                    value = .object(JSONObject(stack.removeLast().entries))
                } else {
                    stack[top].elements.append(value)
                    if byte == ASCII.comma {
                        index += 1
                        skipWhitespace()
                        break
                    }
                    guard byte == ASCII.closeBracket else { throw expected("',' or ']'") }
                    index += 1
                    value = .array(stack.removeLast().elements)
                }
            }
        }
    }

    /// Parses a value starting at `index`; for a non-empty container, pushes a frame and returns nil.
    private mutating func parseValueStart() throws(JSONError) -> JSONValue? {
        guard let byte = peek() else { throw expected("a value") }
        switch byte {
        case ASCII.openBrace, ASCII.openBracket:
            guard stack.count < maxDepth else {
                throw JSONError(message: "nesting depth exceeds the limit of \(maxDepth)", offset: index)
            }
            let isObject = byte == ASCII.openBrace
            index += 1
            skipWhitespace()
            if peek() == (isObject ? ASCII.closeBrace : ASCII.closeBracket) {
                index += 1
                return isObject ? .object(JSONObject()) : .array([])
            }
            var frame = Frame(isObject: isObject)
            // Typical objects (JWT claims, protobuf messages) have a dozen members: grow once, not five times.
            if isObject { frame.entries.reserveCapacity(16) }
            stack.append(frame)
            if isObject {
                try parseMemberKey()
            }
            return nil
        case ASCII.quote:
            return .string(try parseString())
        case UInt8(ascii: "t"):
            return try parseLiteral("true", .bool(true))
        case UInt8(ascii: "f"):
            return try parseLiteral("false", .bool(false))
        case UInt8(ascii: "n"):
            return try parseLiteral("null", .null)
        case ASCII.minus, ASCII.zero...ASCII.nine:
            return .number(try parseNumber())
        default:
            throw JSONError(message: "unexpected \(describe(byte)), expected a value", offset: index)
        }
    }

    /// Parses `"key" :` for the innermost object frame and records the key, rejecting duplicates.
    private mutating func parseMemberKey() throws(JSONError) {
        let keyOffset = index
        guard peek() == ASCII.quote else { throw expected("a string key") }
        let key = try parseString()
        let top = stack.count - 1
        if let inserted = stack[top].keySet?.insert(key).inserted {
            if !inserted { throw duplicateKey(key, at: keyOffset) }
        } else {
            if stack[top].entries.contains(where: { $0.key == key }) { throw duplicateKey(key, at: keyOffset) }
            if stack[top].entries.count >= 24 {
                var keys = Set(stack[top].entries.map(\.key))
                keys.insert(key)
                stack[top].keySet = keys
            }
        }
        stack[top].pendingKey = key
        skipWhitespace()
        guard peek() == ASCII.colon else { throw expected("':'") }
        index += 1
        skipWhitespace()
    }

    private mutating func parseLiteral(_ word: String, _ value: JSONValue) throws(JSONError) -> JSONValue {
        let start = index
        for expectedByte in word.utf8 {
            guard index < input.count, input[index] == expectedByte else {
                throw JSONError(message: "invalid literal, expected '\(word)'", offset: start)
            }
            index += 1
        }
        return value
    }

    /// Parses a number per the RFC 8259 grammar and returns its literal text.
    private mutating func parseNumber() throws(JSONError) -> String {
        let start = index
        if peek() == ASCII.minus {
            index += 1
        }
        guard let first = peek(), isDigit(first) else { throw invalidNumber("expected a digit") }
        if first == ASCII.zero {
            index += 1
            if let next = peek(), isDigit(next) {
                throw JSONError(message: "invalid number: leading zeros are not allowed", offset: start)
            }
        } else {
            skipDigits()
        }
        if peek() == ASCII.dot {
            index += 1
            guard skipDigits() > 0 else { throw invalidNumber("expected a digit after '.'") }
        }
        if peek() == UInt8(ascii: "e") || peek() == UInt8(ascii: "E") {
            index += 1
            if peek() == ASCII.plus || peek() == ASCII.minus {
                index += 1
            }
            guard skipDigits() > 0 else { throw invalidNumber("expected a digit in the exponent") }
        }
        return String(decoding: UnsafeBufferPointer(rebasing: input[start..<index]), as: UTF8.self)
    }

    /// Parses a string whose opening quote is at `index`, validating UTF-8 and resolving escapes.
    private mutating func parseString() throws(JSONError) -> String {
        let openingQuote = index
        index += 1
        var runStart = index
        var unescaped: [UInt8] = []
        var hasEscapes = false
        while index < input.count {
            let byte = input[index]
            if byte == ASCII.quote {
                let run = UnsafeBufferPointer(rebasing: input[runStart..<index])
                index += 1
                guard hasEscapes else { return String(decoding: run, as: UTF8.self) }
                unescaped.append(contentsOf: run)
                return String(decoding: unescaped, as: UTF8.self)
            } else if byte == ASCII.backslash {
                hasEscapes = true
                unescaped.append(contentsOf: UnsafeBufferPointer(rebasing: input[runStart..<index]))
                try parseEscape(into: &unescaped)
                runStart = index
            } else if byte < 0x20 {
                throw JSONError(message: "unescaped control character \(hexByte(byte)) in string", offset: index)
            } else if byte < 0x80 {
                index += 1
            } else {
                try skipUTF8Sequence(lead: byte)
            }
        }
        throw JSONError(message: "unterminated string", offset: openingQuote)
    }

    /// Decodes the escape sequence at `index` (a backslash) and appends its UTF-8 encoding.
    private mutating func parseEscape(into buffer: inout [UInt8]) throws(JSONError) {
        let start = index
        guard index + 1 < input.count else { throw JSONError(message: "unterminated string", offset: start) }
        let letter = input[index + 1]
        index += 2
        switch letter {
        case ASCII.quote, ASCII.backslash, ASCII.slash: buffer.append(letter)
        case UInt8(ascii: "b"): buffer.append(0x08)
        case UInt8(ascii: "f"): buffer.append(0x0C)
        case UInt8(ascii: "n"): buffer.append(0x0A)
        case UInt8(ascii: "r"): buffer.append(0x0D)
        case UInt8(ascii: "t"): buffer.append(0x09)
        case UInt8(ascii: "u"):
            let unit = try parseHex4(escapeOffset: start)
            var scalar = unit
            if (0xD800...0xDBFF).contains(unit) {
                let lowOffset = index
                guard index + 1 < input.count, input[index] == ASCII.backslash, input[index + 1] == UInt8(ascii: "u")
                else { throw JSONError(message: "unpaired high surrogate in \\u escape", offset: start) }
                index += 2
                let low = try parseHex4(escapeOffset: lowOffset)
                guard (0xDC00...0xDFFF).contains(low) else {
                    throw JSONError(message: "unpaired high surrogate in \\u escape", offset: start)
                }
                scalar = 0x10000 + ((unit - 0xD800) << 10) + (low - 0xDC00)
            } else if (0xDC00...0xDFFF).contains(unit) {
                throw JSONError(message: "unpaired low surrogate in \\u escape", offset: start)
            }
            appendUTF8(scalar, to: &buffer)
        default:
            throw JSONError(message: "invalid escape sequence \\\(describeEscapeLetter(letter))", offset: start)
        }
    }

    private mutating func parseHex4(escapeOffset: Int) throws(JSONError) -> UInt32 {
        var value: UInt32 = 0
        for _ in 0..<4 {
            guard let byte = peek(), let digit = hexValue(byte) else {
                throw JSONError(message: "invalid \\u escape: expected 4 hex digits", offset: escapeOffset)
            }
            value = value << 4 | UInt32(digit)
            index += 1
        }
        return value
    }

    /// Validates one multi-byte UTF-8 sequence starting at `index` (rejecting overlongs and surrogates) and skips it.
    private mutating func skipUTF8Sequence(lead: UInt8) throws(JSONError) {
        let continuationCount: Int
        var secondLow: UInt8 = 0x80
        var secondHigh: UInt8 = 0xBF
        switch lead {
        case 0xC2...0xDF: continuationCount = 1
        case 0xE0: continuationCount = 2; secondLow = 0xA0
        case 0xE1...0xEC, 0xEE...0xEF: continuationCount = 2
        case 0xED: continuationCount = 2; secondHigh = 0x9F
        case 0xF0: continuationCount = 3; secondLow = 0x90
        case 0xF1...0xF3: continuationCount = 3
        case 0xF4: continuationCount = 3; secondHigh = 0x8F
        default: throw invalidUTF8()
        }
        guard continuationCount < input.count - index else { throw invalidUTF8() }
        let second = input[index + 1]
        guard second >= secondLow, second <= secondHigh else { throw invalidUTF8() }
        for offset in stride(from: 2, through: continuationCount, by: 1) where input[index + offset] & 0xC0 != 0x80 {
            throw invalidUTF8()
        }
        index += continuationCount + 1
    }

    // MARK: Helpers

    private func peek() -> UInt8? {
        index < input.count ? input[index] : nil
    }

    private mutating func skipWhitespace() {
        while index < input.count {
            switch input[index] {
            case ASCII.space, ASCII.tab, ASCII.newline, ASCII.carriageReturn: index += 1
            default: return
            }
        }
    }

    @discardableResult
    private mutating func skipDigits() -> Int {
        let start = index
        while let byte = peek(), isDigit(byte) {
            index += 1
        }
        return index - start
    }

    private func isDigit(_ byte: UInt8) -> Bool {
        byte >= ASCII.zero && byte <= ASCII.nine
    }

    private func hexValue(_ byte: UInt8) -> UInt8? {
        switch byte {
        case ASCII.zero...ASCII.nine: byte - ASCII.zero
        case UInt8(ascii: "a")...UInt8(ascii: "f"): byte - UInt8(ascii: "a") + 10
        case UInt8(ascii: "A")...UInt8(ascii: "F"): byte - UInt8(ascii: "A") + 10
        default: nil
        }
    }

    private func expected(_ what: String) -> JSONError {
        let prefix = index < input.count ? "" : "unexpected end of input, "
        return JSONError(message: "\(prefix)expected \(what)", offset: index)
    }

    private func invalidNumber(_ detail: String) -> JSONError {
        JSONError(message: "invalid number: \(detail)", offset: index)
    }

    private func invalidUTF8() -> JSONError {
        JSONError(message: "invalid UTF-8 in string", offset: index)
    }

    private func duplicateKey(_ key: String, at offset: Int) -> JSONError {
        JSONError(message: "duplicate key \(quotedExcerpt(key)) in object", offset: offset)
    }

    private func describe(_ byte: UInt8) -> String {
        (0x21...0x7E).contains(byte) ? "character '\(Character(Unicode.Scalar(byte)))'" : "byte \(hexByte(byte))"
    }

    private func describeEscapeLetter(_ byte: UInt8) -> String {
        (0x21...0x7E).contains(byte) ? String(Character(Unicode.Scalar(byte))) : "(byte \(hexByte(byte)))"
    }
}

private func hexByte(_ byte: UInt8) -> String {
    (byte < 0x10 ? "0x0" : "0x") + String(byte, radix: 16, uppercase: true)
}

/// Appends the UTF-8 encoding of a Unicode scalar value (already known to be valid) to `buffer`.
private func appendUTF8(_ scalar: UInt32, to buffer: inout [UInt8]) {
    switch scalar {
    case 0..<0x80:
        buffer.append(UInt8(truncatingIfNeeded: scalar))
    case 0x80..<0x800:
        buffer.append(UInt8(truncatingIfNeeded: 0xC0 | scalar >> 6))
        buffer.append(UInt8(truncatingIfNeeded: 0x80 | scalar & 0x3F))
    case 0x800..<0x10000:
        buffer.append(UInt8(truncatingIfNeeded: 0xE0 | scalar >> 12))
        buffer.append(UInt8(truncatingIfNeeded: 0x80 | scalar >> 6 & 0x3F))
        buffer.append(UInt8(truncatingIfNeeded: 0x80 | scalar & 0x3F))
    default:
        buffer.append(UInt8(truncatingIfNeeded: 0xF0 | scalar >> 18))
        buffer.append(UInt8(truncatingIfNeeded: 0x80 | scalar >> 12 & 0x3F))
        buffer.append(UInt8(truncatingIfNeeded: 0x80 | scalar >> 6 & 0x3F))
        buffer.append(UInt8(truncatingIfNeeded: 0x80 | scalar & 0x3F))
    }
}
