/// A ULID: 48 bits of milliseconds since the epoch then 80 random bits, written as 26 Crockford base32
/// characters. They sort by creation time both as text and as bytes, which is what keyset paging relies on.
public struct ULID: Sendable, Hashable, Comparable, CustomStringConvertible {
    /// The top 64 bits (the timestamp and the first 16 random bits) and the bottom 64.
    public let high: UInt64
    public let low: UInt64

    @inlinable
    public init(high: UInt64, low: UInt64) {
        self.high = high
        self.low = low
    }

    /// A ULID for `milliseconds` with the given 80 random bits (the top 16 bits of `randomHigh` are ignored).
    public init(milliseconds: UInt64, randomHigh: UInt16, randomLow: UInt64) {
        self.init(high: (milliseconds & 0xFFFF_FFFF_FFFF) << 16 | UInt64(randomHigh), low: randomLow)
    }

    public var milliseconds: UInt64 { high >> 16 }

    public static func < (a: ULID, b: ULID) -> Bool { (a.high, a.low) < (b.high, b.low) }

    /// The smallest ULID after this one, or nil at the very end.
    public var successor: ULID? {
        if low != .max { return ULID(high: high, low: low + 1) }
        if high != .max { return ULID(high: high + 1, low: 0) }
        return nil
    }

    @usableFromInline static let alphabet = Array("0123456789ABCDEFGHJKMNPQRSTVWXYZ".utf8)

    /// Crockford base32 value of an ASCII byte; lower case and the look-alikes I, L (→1) and O (→0) are
    /// accepted as the spec asks, U is not.
    @usableFromInline static let values: [UInt8] = {
        var table = [UInt8](repeating: 0xFF, count: 256)
        for (i, c) in alphabet.enumerated() {
            table[Int(c)] = UInt8(i)
            table[Int(c | 0x20)] = UInt8(i)  // lower case
        }
        for (c, v): (Character, UInt8) in [("I", 1), ("L", 1), ("O", 0)] {
            let byte = c.asciiValue!
            table[Int(byte)] = v
            table[Int(byte | 0x20)] = v
        }
        return table
    }()

    /// Parses the 26-character text form; nil for anything else (wrong length, foreign characters, or a
    /// first character above 7, which would overflow 128 bits).
    @inlinable
    public init?(_ text: some StringProtocol) {
        let utf8 = text.utf8
        guard utf8.count == 26 else { return nil }
        var high: UInt64 = 0
        var low: UInt64 = 0
        for (i, byte) in utf8.enumerated() {
            let v = ULID.values[Int(byte)]
            if v == 0xFF || (i == 0 && v > 7) { return nil }
            // 130 bits of text, the first 2 always zero: shift the 128-bit (high, low) left by 5.
            high = high << 5 | low >> 59
            low = low << 5 | UInt64(v)
        }
        self.init(high: high, low: low)
    }

    public var description: String {
        var out = [UInt8](repeating: 0, count: 26)
        var high = high
        var low = low
        for i in stride(from: 25, through: 0, by: -1) {
            out[i] = ULID.alphabet[Int(low & 31)]
            low = low >> 5 | high << 59
            high >>= 5
        }
        return String(decoding: out, as: UTF8.self)
    }

    /// The 16 big-endian bytes, which sort like the ULIDs.
    @inlinable
    public var bytes: [UInt8] {
        (0..<16).map { i in UInt8(truncatingIfNeeded: (i < 8 ? high >> (56 - 8 * i) : low >> (56 - 8 * (i - 8)))) }
    }

    @inlinable
    public init?(bytes: some Collection<UInt8>) {
        guard bytes.count == 16 else { return nil }
        var high: UInt64 = 0
        var low: UInt64 = 0
        for (i, b) in bytes.enumerated() {
            if i < 8 { high = high << 8 | UInt64(b) } else { low = low << 8 | UInt64(b) }
        }
        self.init(high: high, low: low)
    }
}
