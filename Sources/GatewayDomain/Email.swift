/// An email address as users type it, checked for shape (not deliverability). Two addresses are the same
/// user when their `canonical` forms match: uniqueness is case-insensitive.
public struct Email: Sendable, Hashable, CustomStringConvertible {
    /// As given, surrounding whitespace removed.
    public let value: String
    /// Lower-cased: the uniqueness key.
    public let canonical: String

    public static let maximumLength = 254

    /// Validates `text`; `field` names the request field in the error.
    public init(_ text: String, field: String = "email") throws(DomainError) {
        let trimmed = text.trimmingASCIIWhitespace()
        guard !trimmed.isEmpty else { throw .invalid(field, "is required") }
        let bytes = Array(trimmed.utf8)
        guard bytes.count <= Email.maximumLength else {
            throw .invalid(field, "is longer than \(Email.maximumLength) bytes")
        }
        guard let at = bytes.lastIndex(of: UInt8(ascii: "@")), bytes.firstIndex(of: UInt8(ascii: "@")) == at else {
            throw .invalid(field, "must contain exactly one @")
        }
        let local = bytes[..<at]
        let domain = bytes[(at + 1)...]
        guard !local.isEmpty, local.count <= 64 else { throw .invalid(field, "the part before @ must be 1 to 64 bytes") }
        guard local.allSatisfy(Email.isLocalByte), local.first != UInt8(ascii: "."), local.last != UInt8(ascii: "."),
            !Email.hasDoubleDot(local)
        else { throw .invalid(field, "the part before @ has a character or dot that is not allowed") }
        let labels = domain.split(separator: UInt8(ascii: "."), omittingEmptySubsequences: false)
        guard labels.count >= 2,
            labels.allSatisfy({ label in
                (1...63).contains(label.count) && label.allSatisfy(Email.isDomainByte)
                    && label.first != UInt8(ascii: "-") && label.last != UInt8(ascii: "-")
            })
        else { throw .invalid(field, "the domain must be dot-separated labels of letters, digits and hyphens") }
        value = trimmed
        canonical = trimmed.lowercased()
    }

    public var description: String { value }

    /// Letters, digits and the printable specials RFC 5322 allows unquoted, plus non-ASCII (RFC 6531).
    private static func isLocalByte(_ b: UInt8) -> Bool {
        if b >= 0x80 { return true }
        if isAlphanumeric(b) { return true }
        return "!#$%&'*+-/=?^_`{|}~.".utf8.contains(b)
    }

    private static func isDomainByte(_ b: UInt8) -> Bool { b >= 0x80 || isAlphanumeric(b) || b == UInt8(ascii: "-") }

    private static func isAlphanumeric(_ b: UInt8) -> Bool {
        (UInt8(ascii: "a")...UInt8(ascii: "z")).contains(b | 0x20) || (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(b)
    }

    private static func hasDoubleDot(_ bytes: ArraySlice<UInt8>) -> Bool {
        zip(bytes, bytes.dropFirst()).contains { $0 == UInt8(ascii: ".") && $1 == UInt8(ascii: ".") }
    }
}

extension String {
    func trimmingASCIIWhitespace() -> String {
        // Most values have nothing to trim: a first and last byte that are not ASCII whitespace begin and end
        // characters that are not (a character equal to " " is that one scalar alone), so no copy is needed.
        let isSpaceByte: (UInt8) -> Bool = { $0 == 0x20 || $0 == 0x09 || $0 == 0x0A || $0 == 0x0D }
        if let first = utf8.first, let last = utf8.last, !isSpaceByte(first), !isSpaceByte(last) { return self }
        // "\r\n" is one Character.
        let isSpace: (Character) -> Bool = { $0 == " " || $0 == "\t" || $0 == "\n" || $0 == "\r" || $0 == "\r\n" }
        guard let first = firstIndex(where: { !isSpace($0) }), let last = lastIndex(where: { !isSpace($0) }) else {
            return ""
        }
        return String(self[first...last])
    }

    /// A name shown to people: trimmed, 1 to `maximumLength` characters, no control characters.
    func validatedLabel(field: String, maximumLength: Int) throws(DomainError) -> String {
        let trimmed = trimmingASCIIWhitespace()
        guard !trimmed.isEmpty else { throw .invalid(field, "must not be empty") }
        guard trimmed.count <= maximumLength else { throw .invalid(field, "is longer than \(maximumLength) characters") }
        guard !trimmed.containsControlCharacter else { throw .invalid(field, "must not contain control characters") }
        return trimmed
    }

    /// True when the text holds a control character (C0, DEL or C1), which no name or label should.
    var containsControlCharacter: Bool {
        unicodeScalars.contains { $0.value < 0x20 || (0x7F...0x9F).contains($0.value) }
    }
}
