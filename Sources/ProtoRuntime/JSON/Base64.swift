/// An error describing why a base64 text was rejected.
public struct Base64Error: Error, Sendable, Hashable, CustomStringConvertible {
    /// What is wrong, for example `invalid character '*' at offset 3`.
    public var message: String

    /// Creates an error with the given message.
    public init(message: String) {
        self.message = message
    }

    /// The message prefixed with `invalid base64: `.
    public var description: String {
        "invalid base64: \(message)"
    }
}

/// Base64 encoding and decoding (RFC 4648) of the standard and URL-safe alphabets.
public enum Base64 {
    /// Which 64-character alphabet a strict decode accepts.
    public enum Alphabet: Sendable, Hashable {
        /// `A–Z a–z 0–9 + /` (RFC 4648 §4).
        case standard
        /// `A–Z a–z 0–9 - _` (RFC 4648 §5).
        case urlSafe
    }

    /// How a strict decode treats trailing `=` padding.
    public enum Padding: Sendable, Hashable {
        /// Any `=` is an error.
        case forbidden
        /// Padding may be omitted, but when present it must be complete and correct.
        case optional
        /// The text length must be a multiple of 4, padded with `=` as needed.
        case required
    }

    /// Encodes bytes with the standard alphabet and `=` padding.
    public static func encode(_ bytes: some Collection<UInt8>) -> String {
        String(decoding: encodeToBytes(bytes), as: UTF8.self)
    }

    /// Encodes bytes with the standard alphabet and `=` padding, returning the ASCII bytes of the text.
    public static func encodeToBytes(_ bytes: some Collection<UInt8>) -> [UInt8] {
        var output: [UInt8] = []
        append(bytes, to: &output, alphabet: .standard, padded: true)
        return output
    }

    /// Encodes bytes with the URL-safe alphabet and no padding (the base64url form used by JWT).
    public static func encodeURLSafeUnpadded(_ bytes: some Collection<UInt8>) -> String {
        var output: [UInt8] = []
        append(bytes, to: &output, alphabet: .urlSafe, padded: false)
        return String(decoding: output, as: UTF8.self)
    }

    /// Decodes base64 leniently, as proto3 JSON requires: either alphabet (even mixed), padding optional.
    ///
    /// Padding that is present must be correct; whitespace is rejected; non-zero unused trailing bits are ignored.
    public static func decode(_ text: some StringProtocol) throws -> [UInt8] {
        try withUTF8(text) { try decode($0, acceptsStandard: true, acceptsURLSafe: true, padding: .optional, canonical: false) }
    }

    /// Decodes base64 strictly: one alphabet, the given padding rule, and non-zero unused trailing bits rejected.
    public static func decodeStrict(_ text: some StringProtocol, alphabet: Alphabet = .urlSafe, padding: Padding = .forbidden) throws -> [UInt8] {
        try withUTF8(text) {
            try decode(
                $0, acceptsStandard: alphabet == .standard, acceptsURLSafe: alphabet == .urlSafe,
                padding: padding, canonical: true)
        }
    }

    /// ``decodeStrict(_:alphabet:padding:)`` over the text's UTF-8 bytes.
    public static func decodeStrict(utf8 bytes: some Collection<UInt8>, alphabet: Alphabet = .urlSafe, padding: Padding = .forbidden) throws -> [UInt8] {
        let decode = { (input: UnsafeBufferPointer<UInt8>) throws -> [UInt8] in
            try Self.decode(input, acceptsStandard: alphabet == .standard, acceptsURLSafe: alphabet == .urlSafe, padding: padding, canonical: true)
        }
        if let result = try bytes.withContiguousStorageIfAvailable(decode) { return result }
        return try Array(bytes).withUnsafeBufferPointer(decode)
    }

    /// Appends the base64 encoding of `bytes` to `output`.
    static func append(_ bytes: some Collection<UInt8>, to output: inout [UInt8], alphabet: Alphabet, padded: Bool) {
        let encoded: ()? = bytes.withContiguousStorageIfAvailable {
            append(contiguous: $0, to: &output, alphabet: alphabet, padded: padded)
        }
        if encoded == nil {
            Array(bytes).withUnsafeBufferPointer { append(contiguous: $0, to: &output, alphabet: alphabet, padded: padded) }
        }
    }

    private static func append(contiguous input: UnsafeBufferPointer<UInt8>, to output: inout [UInt8], alphabet: Alphabet, padded: Bool) {
        output.reserveCapacity(output.count + (input.count + 2) / 3 * 4)
        let urlSafe = alphabet == .urlSafe
        var index = 0
        while input.count - index >= 3 {
            let group = UInt32(input[index]) << 16 | UInt32(input[index + 1]) << 8 | UInt32(input[index + 2])
            output.append(symbol(group >> 18, urlSafe))
            output.append(symbol(group >> 12, urlSafe))
            output.append(symbol(group >> 6, urlSafe))
            output.append(symbol(group, urlSafe))
            index += 3
        }
        switch input.count - index {
        case 1:
            let group = UInt32(input[index]) << 16
            output.append(symbol(group >> 18, urlSafe))
            output.append(symbol(group >> 12, urlSafe))
            if padded { output.append(contentsOf: [equals, equals]) }
        case 2:
            let group = UInt32(input[index]) << 16 | UInt32(input[index + 1]) << 8
            output.append(symbol(group >> 18, urlSafe))
            output.append(symbol(group >> 12, urlSafe))
            output.append(symbol(group >> 6, urlSafe))
            if padded { output.append(equals) }
        default:
            break
        }
    }

    private static let equals = UInt8(ascii: "=")

    /// The alphabet character for the low 6 bits of `value`.
    private static func symbol(_ value: UInt32, _ urlSafe: Bool) -> UInt8 {
        let sextet = UInt8(truncatingIfNeeded: value & 0x3F)
        switch sextet {
        case 0..<26: return sextet + UInt8(ascii: "A")
        case 26..<52: return sextet - 26 + UInt8(ascii: "a")
        case 52..<62: return sextet - 52 + UInt8(ascii: "0")
        case 62: return urlSafe ? UInt8(ascii: "-") : UInt8(ascii: "+")
        default: return urlSafe ? UInt8(ascii: "_") : UInt8(ascii: "/")
        }
    }

    private static func withUTF8<R>(_ text: some StringProtocol, _ body: (UnsafeBufferPointer<UInt8>) throws -> R) throws -> R {
        if let result = try text.utf8.withContiguousStorageIfAvailable(body) {
            return result
        }
        return try Array(text.utf8).withUnsafeBufferPointer(body)
    }

    private static func decode(
        _ input: UnsafeBufferPointer<UInt8>, acceptsStandard: Bool, acceptsURLSafe: Bool, padding: Padding, canonical: Bool
    ) throws(Base64Error) -> [UInt8] {
        // Everything before the trailing run of '=' is data.
        var dataCount = input.count
        while dataCount > 0, input[dataCount - 1] == equals {
            dataCount -= 1
        }
        let table = acceptsStandard ? (acceptsURLSafe ? eitherAlphabet : standardAlphabet) : urlSafeAlphabet
        let remainder = dataCount % 4
        let outputCount = dataCount / 4 * 3 + max(remainder - 1, 0)
        var output = [UInt8](repeating: 0, count: outputCount)
        // Whole groups of four characters, a table lookup each; an invalid one has its high bit set.
        var group: UInt32 = 0
        let invalid: Int? = table.withUnsafeBufferPointer { table in
            output.withUnsafeMutableBufferPointer { out in
                var i = 0
                var o = 0
                while i + 4 <= dataCount {
                    let a = table[Int(input[i])], b = table[Int(input[i + 1])]
                    let c = table[Int(input[i + 2])], d = table[Int(input[i + 3])]
                    if (a | b | c | d) & 0x80 != 0 { return i }
                    let bits = UInt32(a) << 18 | UInt32(b) << 12 | UInt32(c) << 6 | UInt32(d)
                    out[o] = UInt8(truncatingIfNeeded: bits >> 16)
                    out[o + 1] = UInt8(truncatingIfNeeded: bits >> 8)
                    out[o + 2] = UInt8(truncatingIfNeeded: bits)
                    i += 4
                    o += 3
                }
                for index in i..<dataCount {
                    let value = table[Int(input[index])]
                    if value & 0x80 != 0 { return index }
                    group = group << 6 | UInt32(value)
                }
                return nil
            }
        }
        if let start = invalid {
            let index = (start..<dataCount).first { table[Int(input[$0])] & 0x80 != 0 } ?? start
            let byte = input[index]
            let shown = (0x21...0x7E).contains(byte) ? "'\(Character(Unicode.Scalar(byte)))'" : "byte \(byte)"
            throw Base64Error(message: "invalid character \(shown) at offset \(index)")
        }

        let paddingCount = input.count - dataCount
        if remainder == 1 {
            throw Base64Error(message: "invalid length: \(dataCount) data characters cannot encode whole bytes")
        }
        if paddingCount > 0 {
            guard padding != .forbidden else { throw Base64Error(message: "padding is not allowed") }
            guard remainder != 0, paddingCount == 4 - remainder else {
                throw Base64Error(message: "incorrect padding")
            }
        } else if padding == .required, remainder != 0 {
            throw Base64Error(message: "missing padding")
        }
        switch remainder {
        case 2:
            if canonical, group & 0x0F != 0 { throw nonCanonical() }
            output[outputCount - 1] = UInt8(truncatingIfNeeded: group >> 4)
        case 3:
            if canonical, group & 0x03 != 0 { throw nonCanonical() }
            output[outputCount - 2] = UInt8(truncatingIfNeeded: group >> 10)
            output[outputCount - 1] = UInt8(truncatingIfNeeded: group >> 2)
        default:
            break
        }
        return output
    }

    private static func nonCanonical() -> Base64Error {
        Base64Error(message: "non-zero unused bits in the final character")
    }

    /// Sextet values by input byte; 0xFF for a byte outside the alphabet.
    private static func table(standard: Bool, urlSafe: Bool) -> [UInt8] {
        var table = [UInt8](repeating: 0xFF, count: 256)
        for (offset, byte) in Array("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789".utf8).enumerated() {
            table[Int(byte)] = UInt8(offset)
        }
        if standard { table[Int(UInt8(ascii: "+"))] = 62; table[Int(UInt8(ascii: "/"))] = 63 }
        if urlSafe { table[Int(UInt8(ascii: "-"))] = 62; table[Int(UInt8(ascii: "_"))] = 63 }
        return table
    }

    private static let standardAlphabet = table(standard: true, urlSafe: false)
    private static let urlSafeAlphabet = table(standard: false, urlSafe: true)
    private static let eitherAlphabet = table(standard: true, urlSafe: true)
}
