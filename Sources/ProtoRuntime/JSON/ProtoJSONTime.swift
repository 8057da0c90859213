/// The proto3 JSON string forms of `google.protobuf.Timestamp`, `Duration` and `FieldMask`.
///
/// Output matches the canonical forms written by the reference implementations (for example Python's
/// `json_format`); parsing is strict RFC 3339 / proto3 grammar, so some inputs that Python's lenient
/// `strptime`/`int()` parsing tolerates are rejected.
public enum ProtoJSONTime {
    /// 0001-01-01T00:00:00Z.
    private static let minTimestampSeconds: Int64 = -62_135_596_800
    /// 9999-12-31T23:59:59Z.
    private static let maxTimestampSeconds: Int64 = 253_402_300_799
    /// About 10,000 years.
    private static let maxDurationSeconds: Int64 = 315_576_000_000
    private static let secondsPerDay: Int64 = 86_400

    // MARK: Timestamp

    /// Formats a Timestamp as RFC 3339 in UTC with a `Z` suffix and 0, 3, 6 or 9 fractional digits.
    ///
    /// Throws unless `seconds` is within 0001-01-01T00:00:00Z...9999-12-31T23:59:59Z and `nanos` is 0...999,999,999.
    public static func formatTimestamp(seconds: Int64, nanos: Int32) throws -> String {
        guard (minTimestampSeconds...maxTimestampSeconds).contains(seconds) else {
            throw ProtoJSONError(message: "Timestamp seconds \(seconds) out of range [\(minTimestampSeconds), \(maxTimestampSeconds)]")
        }
        guard (0...999_999_999).contains(nanos) else {
            throw ProtoJSONError(message: "Timestamp nanos \(nanos) out of range [0, 999999999]")
        }
        let days = floorDivide(seconds, secondsPerDay)
        let secondOfDay = seconds - days * secondsPerDay
        let date = civilFromDays(days)
        var out: [UInt8] = []
        out.reserveCapacity(30)
        appendDigits(date.year, width: 4, to: &out)
        out.append(UInt8(ascii: "-"))
        appendDigits(date.month, width: 2, to: &out)
        out.append(UInt8(ascii: "-"))
        appendDigits(date.day, width: 2, to: &out)
        out.append(UInt8(ascii: "T"))
        appendDigits(secondOfDay / 3600, width: 2, to: &out)
        out.append(UInt8(ascii: ":"))
        appendDigits(secondOfDay / 60 % 60, width: 2, to: &out)
        out.append(UInt8(ascii: ":"))
        appendDigits(secondOfDay % 60, width: 2, to: &out)
        appendFraction(nanos, to: &out)
        out.append(UInt8(ascii: "Z"))
        return String(decoding: out, as: UTF8.self)
    }

    /// Parses an RFC 3339 timestamp `YYYY-MM-DDTHH:MM:SS[.f…]Z` or with a `±HH:MM` offset.
    ///
    /// Like Python's `json_format`, only uppercase `T` and `Z` are accepted; the fraction has 1–9 digits,
    /// fields must be zero-padded and in range (no leap second), and the result must lie in years 1–9999.
    public static func parseTimestamp(_ s: String) throws -> (seconds: Int64, nanos: Int32) {
        var text = s
        return try text.withUTF8 { utf8 -> (seconds: Int64, nanos: Int32) in
            var cursor = Cursor(utf8: utf8, typeName: "Timestamp", text: s)
            let year = try cursor.digits(4)
            try cursor.expect("-")
            let month = try cursor.digits(2)
            try cursor.expect("-")
            let day = try cursor.digits(2)
            try cursor.expect("T")
            let hour = try cursor.digits(2)
            try cursor.expect(":")
            let minute = try cursor.digits(2)
            try cursor.expect(":")
            let second = try cursor.digits(2)
            let nanos = try cursor.fraction()
            var offset: Int64 = 0
            if cursor.skip("Z") {
                // UTC
            } else if cursor.skip("+") || cursor.skip("-") {
                let sign: Int64 = utf8[cursor.index - 1] == UInt8(ascii: "-") ? -1 : 1
                let offsetHours = try cursor.digits(2)
                try cursor.expect(":")
                let offsetMinutes = try cursor.digits(2)
                guard offsetHours <= 23, offsetMinutes <= 59 else { throw cursor.error("time zone offset out of range") }
                offset = sign * (offsetHours * 3600 + offsetMinutes * 60)
            } else {
                throw cursor.error("expected 'Z' or a '+HH:MM'/'-HH:MM' offset")
            }
            guard cursor.atEnd else { throw cursor.error("unexpected trailing characters") }

            guard year >= 1 else { throw cursor.error("year 0000 is out of range") }
            guard (1...12).contains(month) else { throw cursor.error("month out of range") }
            guard (1...daysInMonth(year: year, month: month)).contains(day) else { throw cursor.error("day out of range") }
            guard hour <= 23, minute <= 59, second <= 59 else { throw cursor.error("time of day out of range") }

            let local = daysFromCivil(year: year, month: month, day: day) * secondsPerDay + hour * 3600 + minute * 60 + second
            let seconds = local - offset
            guard (minTimestampSeconds...maxTimestampSeconds).contains(seconds) else {
                throw cursor.error("outside 0001-01-01T00:00:00Z...9999-12-31T23:59:59.999999999Z")
            }
            return (seconds, nanos)
        }
    }

    // MARK: Duration

    /// Formats a Duration as decimal seconds with an `s` suffix and 0, 3, 6 or 9 fractional digits (`"-1.500s"`).
    ///
    /// Throws unless |seconds| ≤ 315,576,000,000, |nanos| ≤ 999,999,999 and the two do not have opposite signs.
    public static func formatDuration(seconds: Int64, nanos: Int32) throws -> String {
        guard (-maxDurationSeconds...maxDurationSeconds).contains(seconds) else {
            throw ProtoJSONError(message: "Duration seconds \(seconds) out of range [-\(maxDurationSeconds), \(maxDurationSeconds)]")
        }
        guard (-999_999_999...999_999_999).contains(nanos) else {
            throw ProtoJSONError(message: "Duration nanos \(nanos) out of range [-999999999, 999999999]")
        }
        guard !(seconds > 0 && nanos < 0), !(seconds < 0 && nanos > 0) else {
            throw ProtoJSONError(message: "Duration seconds \(seconds) and nanos \(nanos) have opposite signs")
        }
        var out: [UInt8] = []
        if seconds < 0 || nanos < 0 {
            out.append(UInt8(ascii: "-"))
        }
        appendDigits(Int64(seconds.magnitude), width: 1, to: &out)
        appendFraction(Int32(nanos.magnitude), to: &out)
        out.append(UInt8(ascii: "s"))
        return String(decoding: out, as: UTF8.self)
    }

    /// Parses a Duration of the form `-?[0-9]+(\.[0-9]{1,9})?s`; the nanos take the sign of the whole value.
    ///
    /// Throws when |seconds| exceeds 315,576,000,000.
    public static func parseDuration(_ s: String) throws -> (seconds: Int64, nanos: Int32) {
        var text = s
        return try text.withUTF8 { utf8 -> (seconds: Int64, nanos: Int32) in
            var cursor = Cursor(utf8: utf8, typeName: "Duration", text: s)
            let negative = cursor.skip("-")
            var seconds: Int64 = 0
            var digitCount = 0
            while let digit = cursor.digit() {
                // Saturate just above the limit so long inputs cannot overflow.
                seconds = min(seconds * 10 + digit, maxDurationSeconds + 1)
                digitCount += 1
            }
            guard digitCount > 0 else { throw cursor.error("expected a digit") }
            let nanos = try cursor.fraction()
            try cursor.expect("s")
            guard cursor.atEnd else { throw cursor.error("unexpected trailing characters") }
            guard seconds <= maxDurationSeconds else {
                throw cursor.error("seconds out of range [-\(maxDurationSeconds), \(maxDurationSeconds)]")
            }
            return negative ? (-seconds, -nanos) : (seconds, nanos)
        }
    }

    // MARK: FieldMask

    /// Formats FieldMask paths: each snake_case path becomes lowerCamelCase, joined with `,`.
    ///
    /// Throws, as Python's `json_format` does, for a path that would not round-trip: one containing an
    /// uppercase letter, a `_` not followed by a lowercase letter (such as `__` or `_1`), or a trailing `_`.
    public static func formatFieldMask(paths: [String]) throws -> String {
        var out: [UInt8] = []
        for (pathIndex, path) in paths.enumerated() {
            if pathIndex > 0 {
                out.append(UInt8(ascii: ","))
            }
            var afterUnderscore = false
            for byte in path.utf8 {
                if isUpper(byte) {
                    throw invalidPath(path, "must not contain uppercase letters")
                } else if afterUnderscore {
                    guard isLower(byte) else { throw invalidPath(path, "the character after '_' must be a lowercase letter") }
                    out.append(byte - 0x20)
                    afterUnderscore = false
                } else if byte == UInt8(ascii: "_") {
                    afterUnderscore = true
                } else {
                    out.append(byte)
                }
            }
            if afterUnderscore {
                throw invalidPath(path, "must not end with '_'")
            }
        }
        return String(decoding: out, as: UTF8.self)
    }

    /// Parses a FieldMask string: splits on `,` and turns each lowerCamelCase path into snake_case.
    ///
    /// The empty string is the empty mask. Like Python's `json_format`, a path containing `_` is rejected.
    public static func parseFieldMask(_ s: String) throws -> [String] {
        guard !s.isEmpty else { return [] }
        return try s.utf8.split(separator: UInt8(ascii: ","), omittingEmptySubsequences: false).map { camel in
            var snake: [UInt8] = []
            snake.reserveCapacity(camel.count + 4)
            for byte in camel {
                if byte == UInt8(ascii: "_") {
                    throw invalidPath(String(decoding: camel, as: UTF8.self), "must not contain '_'")
                } else if isUpper(byte) {
                    snake.append(UInt8(ascii: "_"))
                    snake.append(byte + 0x20)
                } else {
                    snake.append(byte)
                }
            }
            return String(decoding: snake, as: UTF8.self)
        }
    }

    // MARK: Helpers

    private static func invalidPath(_ path: String, _ problem: String) -> ProtoJSONError {
        ProtoJSONError(message: "invalid FieldMask path \(quotedExcerpt(path)): \(problem)")
    }

    private static func isUpper(_ byte: UInt8) -> Bool {
        byte >= UInt8(ascii: "A") && byte <= UInt8(ascii: "Z")
    }

    private static func isLower(_ byte: UInt8) -> Bool {
        byte >= UInt8(ascii: "a") && byte <= UInt8(ascii: "z")
    }

    /// Appends `value` (non-negative) in decimal, left-padded with zeros to at least `width` digits.
    private static func appendDigits(_ value: Int64, width: Int, to out: inout [UInt8]) {
        var divisor: Int64 = 1
        var count = 1
        while value / divisor >= 10 {
            divisor *= 10
            count += 1
        }
        out.append(contentsOf: repeatElement(UInt8(ascii: "0"), count: max(0, width - count)))
        while divisor > 0 {
            out.append(UInt8(ascii: "0") + UInt8(truncatingIfNeeded: value / divisor % 10))
            divisor /= 10
        }
    }

    /// Appends `.` and 3, 6 or 9 digits for non-zero `nanos` (0...999,999,999), whichever is exact.
    private static func appendFraction(_ nanos: Int32, to out: inout [UInt8]) {
        guard nanos != 0 else { return }
        out.append(UInt8(ascii: "."))
        if nanos % 1_000_000 == 0 {
            appendDigits(Int64(nanos / 1_000_000), width: 3, to: &out)
        } else if nanos % 1_000 == 0 {
            appendDigits(Int64(nanos / 1_000), width: 6, to: &out)
        } else {
            appendDigits(Int64(nanos), width: 9, to: &out)
        }
    }

    private static func floorDivide(_ a: Int64, _ b: Int64) -> Int64 {
        let quotient = a / b
        return a % b < 0 ? quotient - 1 : quotient
    }

    private static func isLeapYear(_ year: Int64) -> Bool {
        year % 4 == 0 && (year % 100 != 0 || year % 400 == 0)
    }

    private static func daysInMonth(year: Int64, month: Int64) -> Int64 {
        switch month {
        case 2: isLeapYear(year) ? 29 : 28
        case 4, 6, 9, 11: 30
        default: 31
        }
    }

    /// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's `days_from_civil`).
    private static func daysFromCivil(year: Int64, month: Int64, day: Int64) -> Int64 {
        let y = month <= 2 ? year - 1 : year
        let era = floorDivide(y, 400)
        let yearOfEra = y - era * 400
        let dayOfYear = (153 * (month > 2 ? month - 3 : month + 9) + 2) / 5 + day - 1
        let dayOfEra = yearOfEra * 365 + yearOfEra / 4 - yearOfEra / 100 + dayOfYear
        return era * 146_097 + dayOfEra - 719_468
    }

    /// The proleptic Gregorian date of a day count since 1970-01-01 (H. Hinnant's `civil_from_days`).
    private static func civilFromDays(_ days: Int64) -> (year: Int64, month: Int64, day: Int64) {
        let z = days + 719_468
        let era = floorDivide(z, 146_097)
        let dayOfEra = z - era * 146_097
        let yearOfEra = (dayOfEra - dayOfEra / 1460 + dayOfEra / 36524 - dayOfEra / 146_096) / 365
        let dayOfYear = dayOfEra - (365 * yearOfEra + yearOfEra / 4 - yearOfEra / 100)
        let shiftedMonth = (5 * dayOfYear + 2) / 153
        let day = dayOfYear - (153 * shiftedMonth + 2) / 5 + 1
        let month = shiftedMonth < 10 ? shiftedMonth + 3 : shiftedMonth - 9
        let year = yearOfEra + era * 400 + (month <= 2 ? 1 : 0)
        return (year, month, day)
    }
}

/// A forward reader over the UTF-8 bytes of a Timestamp or Duration string.
private struct Cursor {
    let utf8: UnsafeBufferPointer<UInt8>
    let typeName: String
    let text: String
    var index = 0

    init(utf8: UnsafeBufferPointer<UInt8>, typeName: String, text: String) {
        self.utf8 = utf8
        self.typeName = typeName
        self.text = text
    }

    var atEnd: Bool { index == utf8.count }

    func error(_ problem: String) -> ProtoJSONError {
        ProtoJSONError(message: "invalid \(typeName) \(quotedExcerpt(text)): \(problem)")
    }

    /// Consumes `character` if it is next.
    mutating func skip(_ character: Unicode.Scalar) -> Bool {
        guard index < utf8.count, utf8[index] == UInt8(ascii: character) else { return false }
        index += 1
        return true
    }

    mutating func expect(_ character: Unicode.Scalar) throws(ProtoJSONError) {
        guard skip(character) else { throw error("expected '\(character)' at position \(index)") }
    }

    /// Consumes one ASCII digit if it is next.
    mutating func digit() -> Int64? {
        guard index < utf8.count, utf8[index] >= UInt8(ascii: "0"), utf8[index] <= UInt8(ascii: "9") else { return nil }
        index += 1
        return Int64(utf8[index - 1] - UInt8(ascii: "0"))
    }

    /// Consumes exactly `count` digits.
    mutating func digits(_ count: Int) throws(ProtoJSONError) -> Int64 {
        var value: Int64 = 0
        for _ in 0..<count {
            guard let digit = digit() else { throw error("expected a digit at position \(index)") }
            value = value * 10 + digit
        }
        return value
    }

    /// Consumes an optional `.` followed by 1–9 digits and returns the value in nanoseconds.
    mutating func fraction() throws(ProtoJSONError) -> Int32 {
        guard skip(".") else { return 0 }
        var nanos: Int32 = 0
        var count = 0
        while let digit = digit() {
            count += 1
            guard count <= 9 else { throw error("more than 9 fractional digits") }
            nanos = nanos * 10 + Int32(digit)
        }
        guard count > 0 else { throw error("expected a digit after '.'") }
        for _ in count..<9 {
            nanos *= 10
        }
        return nanos
    }
}
