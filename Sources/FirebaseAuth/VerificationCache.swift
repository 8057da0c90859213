import GatewayApplication
import OpenSSLCrypto
import Synchronization

/// Principals of recently verified tokens, keyed by the SHA-256 of the token (never the token itself), each
/// kept no longer than its token is valid. Bounded: when full, expired entries go, then an eighth of the rest
/// (amortized constant time per insertion).
final class VerificationCache: Sendable {
    /// The token's kind and the SHA-256 of its bytes, held inline: neither the lookup nor the key allocates.
    struct Key: Hashable, Sendable {
        var kind: TokenKind
        var digest: (UInt64, UInt64, UInt64, UInt64) = (0, 0, 0, 0)

        static func == (a: Key, b: Key) -> Bool { a.kind == b.kind && a.digest == b.digest }

        func hash(into hasher: inout Hasher) {
            hasher.combine(kind)
            hasher.combine(digest.0)
            hasher.combine(digest.1)
            hasher.combine(digest.2)
            hasher.combine(digest.3)
        }
    }

    private let capacity: Int
    private let entries = Mutex<[Key: Principal]>([:])

    init(capacity: Int) {
        self.capacity = capacity
    }

    static func key(token: String, kind: TokenKind) -> Key {
        var key = Key(kind: kind)
        var token = token
        token.withUTF8 { bytes in
            withUnsafeMutableBytes(of: &key.digest) { Digest.sha256(UnsafeRawBufferPointer(bytes), into: $0) }
        }
        return key
    }

    func principal(for key: Key, now: Int64, leeway: Int64) -> Principal? {
        entries.withLock { entries in
            guard let principal = entries[key] else { return nil }
            guard principal.expiresAt + leeway >= now else {
                entries[key] = nil
                return nil
            }
            return principal
        }
    }

    func store(_ principal: Principal, for key: Key, now: Int64) {
        entries.withLock { entries in
            if entries.count >= capacity {
                entries = entries.filter { $0.value.expiresAt >= now }
                if entries.count >= capacity {
                    for victim in entries.keys.prefix(max(1, capacity / 8)) { entries[victim] = nil }
                }
            }
            entries[key] = principal
        }
    }
}
