/// An error describing why a JSON value cannot be converted to a proto3 field value.
public struct ProtoJSONError: Error, Sendable, Hashable, CustomStringConvertible {
    /// The full message, for example `field "fInt32": value 1.5 is not an integer`.
    public var message: String

    /// Creates an error with the given message.
    public init(message: String) {
        self.message = message
    }

    /// Creates an error whose message is prefixed with the field's JSON name: `field "name": message`.
    public init(field: String, message: String) {
        self.message = "field \(quotedExcerpt(field)): \(message)"
    }

    /// The message.
    public var description: String {
        message
    }
}

// MARK: - Scalar conversions

/// Conversions from JSON values to proto3 scalar field values, following the proto3 JSON mapping.
///
/// A JSON `null` is rejected by every conversion; generated code treats `null` as "field not set"
/// before calling these. The `field` argument is the field's JSON name and only appears in error messages.
extension JSONValue {
    /// An `int32` from a JSON number or numeric string; fractions and exponents must denote an exact integer.
    public func protoInt32(field: String) throws -> Int32 {
        try protoInteger(field: field, typeName: "int32")
    }

    /// A `uint32` from a JSON number or numeric string; fractions and exponents must denote an exact integer.
    public func protoUInt32(field: String) throws -> UInt32 {
        try protoInteger(field: field, typeName: "uint32")
    }

    /// An `int64` from a JSON number or numeric string, evaluated exactly (no `Double` round trip).
    public func protoInt64(field: String) throws -> Int64 {
        try protoInteger(field: field, typeName: "int64")
    }

    /// A `uint64` from a JSON number or numeric string, evaluated exactly (no `Double` round trip).
    public func protoUInt64(field: String) throws -> UInt64 {
        try protoInteger(field: field, typeName: "uint64")
    }

    /// A `float` from a JSON number, numeric string, or `"NaN"`/`"Infinity"`/`"-Infinity"`.
    ///
    /// The decimal is rounded once to the nearest `Float`; a value that rounds to infinity is out of range.
    public func protoFloat(field: String) throws -> Float {
        let text = try numericText(field: field, typeName: "float")
        if let special = nonFinite(text, as: Float.self) { return special }
        guard isJSONNumber(text) else { throw ProtoJSONError(field: field, message: "value \(shownInMessage) is not a valid float") }
        guard let value = Float(text), value.isFinite else {
            throw ProtoJSONError(field: field, message: "value \(shownInMessage) is out of range for float")
        }
        return value
    }

    /// A `double` from a JSON number, numeric string, or `"NaN"`/`"Infinity"`/`"-Infinity"`.
    ///
    /// A finite decimal that rounds to infinity (such as `1e400`) is out of range.
    public func protoDouble(field: String) throws -> Double {
        let text = try numericText(field: field, typeName: "double")
        if let special = nonFinite(text, as: Double.self) { return special }
        guard isJSONNumber(text) else { throw ProtoJSONError(field: field, message: "value \(shownInMessage) is not a valid double") }
        guard let value = Double(text), value.isFinite else {
            throw ProtoJSONError(field: field, message: "value \(shownInMessage) is out of range for double")
        }
        return value
    }

    /// A `bool` from the JSON literals `true` or `false` (strings are rejected).
    public func protoBool(field: String) throws -> Bool {
        guard case .bool(let value) = self else {
            throw ProtoJSONError(field: field, message: "expected true or false, got \(kindDescription)")
        }
        return value
    }

    /// A `string` from a JSON string.
    public func protoString(field: String) throws -> String {
        guard case .string(let value) = self else {
            throw ProtoJSONError(field: field, message: "expected a string, got \(kindDescription)")
        }
        return value
    }

    /// A `bytes` value from a base64 JSON string (standard or URL-safe alphabet, padding optional).
    public func protoBytes(field: String) throws -> [UInt8] {
        guard case .string(let text) = self else {
            throw ProtoJSONError(field: field, message: "expected a base64 string, got \(kindDescription)")
        }
        do {
            return try Base64.decode(text)
        } catch {
            throw ProtoJSONError(field: field, message: "\(error)")
        }
    }

    private func protoInteger<T: FixedWidthInteger>(field: String, typeName: String) throws -> T {
        let text = try numericText(field: field, typeName: typeName)
        switch parseExactInteger(text, as: T.self) {
        case .value(let value): return value
        case .invalid: throw ProtoJSONError(field: field, message: "value \(shownInMessage) is not a valid \(typeName)")
        case .notInteger: throw ProtoJSONError(field: field, message: "value \(shownInMessage) is not an integer")
        case .outOfRange: throw ProtoJSONError(field: field, message: "value \(shownInMessage) is out of range for \(typeName)")
        }
    }

    /// The text of a JSON number or string; other kinds throw.
    private func numericText(field: String, typeName: String) throws -> String {
        switch self {
        case .number(let text), .string(let text):
            return text
        default:
            throw ProtoJSONError(field: field, message: "expected a number or numeric string for \(typeName), got \(kindDescription)")
        }
    }

    /// A number's literal or a quoted string, cut to a bounded length, for error messages.
    private var shownInMessage: String {
        switch self {
        case .number(let text):
            let prefix = text.prefix(64)
            return prefix.endIndex < text.endIndex ? String(prefix) + "…" : text
        case .string(let text):
            return quotedExcerpt(text)
        default:
            return kindDescription
        }
    }

    /// The special proto3 JSON spellings of non-finite values, valid only as JSON strings.
    private func nonFinite<F: BinaryFloatingPoint>(_ text: String, as type: F.Type) -> F? {
        guard case .string = self else { return nil }
        switch text {
        case "NaN": return .nan
        case "Infinity": return .infinity
        case "-Infinity": return -.infinity
        default: return nil
        }
    }

    private var kindDescription: String {
        switch self {
        case .null: "null"
        case .bool: "a boolean"
        case .number: "a number"
        case .string: "a string"
        case .array: "an array"
        case .object: "an object"
        }
    }
}

// MARK: - Map keys

/// Parsing of proto3 JSON map keys, which are always JSON strings.
///
/// Integer keys must be plain decimal integers (`-?(0|[1-9][0-9]*)`, no fraction, exponent or spaces) in range.
public enum ProtoJSONMapKey {
    /// An `int32` map key.
    public static func int32(_ key: String, field: String) throws -> Int32 {
        try integer(key, field: field, typeName: "int32")
    }

    /// An `int64` map key.
    public static func int64(_ key: String, field: String) throws -> Int64 {
        try integer(key, field: field, typeName: "int64")
    }

    /// A `uint32` map key.
    public static func uint32(_ key: String, field: String) throws -> UInt32 {
        try integer(key, field: field, typeName: "uint32")
    }

    /// A `uint64` map key.
    public static func uint64(_ key: String, field: String) throws -> UInt64 {
        try integer(key, field: field, typeName: "uint64")
    }

    /// A `bool` map key: exactly `"true"` or `"false"`.
    public static func bool(_ key: String, field: String) throws -> Bool {
        switch key {
        case "true": return true
        case "false": return false
        default: throw ProtoJSONError(field: field, message: "map key \(quotedExcerpt(key)) is not \"true\" or \"false\"")
        }
    }

    private static func integer<T: FixedWidthInteger>(_ key: String, field: String, typeName: String) throws -> T {
        let plain = key.utf8.allSatisfy { $0 == UInt8(ascii: "-") || ($0 >= UInt8(ascii: "0") && $0 <= UInt8(ascii: "9")) }
        switch plain ? parseExactInteger(key, as: T.self) : .invalid {
        case .value(let value):
            return value
        case .outOfRange:
            throw ProtoJSONError(field: field, message: "map key \(quotedExcerpt(key)) is out of range for \(typeName)")
        case .invalid, .notInteger:
            throw ProtoJSONError(field: field, message: "map key \(quotedExcerpt(key)) is not a valid \(typeName)")
        }
    }
}

// MARK: - Exact decimal evaluation

private enum ExactInteger<T> {
    case value(T)
    case invalid
    case notInteger
    case outOfRange
}

/// The components of a JSON number literal (RFC 8259 grammar).
private struct NumberLiteral {
    var negative = false
    var integerDigits: Range<Int> = 0..<0
    var fractionDigits: Range<Int> = 0..<0
    /// The decimal exponent, saturated far beyond any meaningful magnitude.
    var exponent = 0

    /// Splits `utf8` into components, or returns nil if it is not exactly one JSON number.
    init?(_ utf8: UnsafeBufferPointer<UInt8>) {
        var index = 0
        func digits() -> Range<Int> {
            let start = index
            while index < utf8.count, utf8[index] >= UInt8(ascii: "0"), utf8[index] <= UInt8(ascii: "9") {
                index += 1
            }
            return start..<index
        }
        if index < utf8.count, utf8[index] == UInt8(ascii: "-") {
            negative = true
            index += 1
        }
        integerDigits = digits()
        guard !integerDigits.isEmpty else { return nil }
        if integerDigits.count > 1, utf8[integerDigits.lowerBound] == UInt8(ascii: "0") { return nil }
        if index < utf8.count, utf8[index] == UInt8(ascii: ".") {
            index += 1
            fractionDigits = digits()
            guard !fractionDigits.isEmpty else { return nil }
        }
        if index < utf8.count, utf8[index] == UInt8(ascii: "e") || utf8[index] == UInt8(ascii: "E") {
            index += 1
            var exponentNegative = false
            if index < utf8.count, utf8[index] == UInt8(ascii: "+") || utf8[index] == UInt8(ascii: "-") {
                exponentNegative = utf8[index] == UInt8(ascii: "-")
                index += 1
            }
            let exponentDigits = digits()
            guard !exponentDigits.isEmpty else { return nil }
            for position in exponentDigits where exponent < 1 << 40 {
                exponent = exponent * 10 + Int(utf8[position] - UInt8(ascii: "0"))
            }
            if exponentNegative { exponent = -exponent }
        }
        guard index == utf8.count else { return nil }
    }
}

/// Whether `text` is exactly one JSON number literal (no surrounding whitespace).
private func isJSONNumber(_ text: String) -> Bool {
    var text = text
    return text.withUTF8 { NumberLiteral($0) != nil }
}

/// Evaluates a JSON number literal exactly as an integer of type `T`.
///
/// Fractions and exponents are allowed when the exact decimal value is integral (`1e5`, `100000.000`);
/// nothing goes through `Double`, so every in-range integer converts exactly.
private func parseExactInteger<T: FixedWidthInteger>(_ text: String, as type: T.Type) -> ExactInteger<T> {
    var text = text
    return text.withUTF8 { utf8 -> ExactInteger<T> in
        guard let literal = NumberLiteral(utf8) else { return .invalid }
        let integerCount = literal.integerDigits.count
        let digitCount = integerCount + literal.fractionDigits.count
        // Digit `k` of the integer digits followed by the fraction digits.
        func digit(_ k: Int) -> UInt8 {
            let position = k < integerCount
                ? literal.integerDigits.lowerBound + k
                : literal.fractionDigits.lowerBound + (k - integerCount)
            return utf8[position] &- UInt8(ascii: "0")
        }
        guard let first = (0..<digitCount).first(where: { digit($0) != 0 }),
              let last = (0..<digitCount).last(where: { digit($0) != 0 })
        else { return .value(0) }
        // value = digits[first...last] × 10^scale
        let scale = literal.exponent - literal.fractionDigits.count + (digitCount - 1 - last)
        if scale < 0 { return .notInteger }
        // UInt64.max has 20 digits.
        if last - first + 1 + scale > 20 { return .outOfRange }
        var magnitude: UInt64 = 0
        for k in first...last {
            let (shifted, overflow1) = magnitude.multipliedReportingOverflow(by: 10)
            let (sum, overflow2) = shifted.addingReportingOverflow(UInt64(digit(k)))
            if overflow1 || overflow2 { return .outOfRange }
            magnitude = sum
        }
        for _ in 0..<scale {
            let (shifted, overflow) = magnitude.multipliedReportingOverflow(by: 10)
            if overflow { return .outOfRange }
            magnitude = shifted
        }
        if !literal.negative {
            return T(exactly: magnitude).map { .value($0) } ?? .outOfRange
        }
        // magnitude ≥ 1 here; -(magnitude - 1) - 1 cannot overflow when magnitude - 1 fits in T.
        guard T.isSigned, let reduced = T(exactly: magnitude - 1) else { return .outOfRange }
        return .value(T.zero - reduced - 1)
    }
}
