internal import COpenSSL

/// SHA-256 and HMAC-SHA-256.
public enum Digest {
    /// `EVP_MD_fetch` once per process: the implicit `EVP_sha256()` takes locks on every call in OpenSSL 3
    /// (openssl/openssl#17064).
    nonisolated(unsafe) static let sha256Algorithm: OpaquePointer = EVP_MD_fetch(nil, "SHA256", nil)!

    public static func sha256(_ bytes: UnsafeRawBufferPointer) -> [UInt8] {
        [UInt8](unsafeUninitializedCapacity: 32) { out, count in
            sha256(bytes, into: UnsafeMutableRawBufferPointer(out))
            count = 32
        }
    }

    /// Writes the 32-byte digest of `bytes` to the start of `output` (at least 32 bytes), without allocating.
    public static func sha256(_ bytes: UnsafeRawBufferPointer, into output: UnsafeMutableRawBufferPointer) {
        precondition(output.count >= 32, "SHA-256 needs 32 bytes of output")
        var length: UInt32 = 0
        let result = EVP_Digest(bytes.baseAddress, bytes.count, output.baseAddress, &length, sha256Algorithm, nil)
        precondition(result == 1 && length == 32, "SHA-256 failed (out of memory)")
    }

    public static func sha256(_ bytes: some Collection<UInt8>) -> [UInt8] {
        Array(bytes).withUnsafeBytes { sha256($0) }
    }

    public static func hmacSHA256(key: [UInt8], message: UnsafeRawBufferPointer) -> [UInt8] {
        var out = [UInt8](repeating: 0, count: 32)
        var length: UInt32 = 0
        let result = key.withUnsafeBytes { k in
            HMAC(sha256Algorithm, k.baseAddress, Int32(k.count), message.baseAddress?.assumingMemoryBound(to: UInt8.self),
                 message.count, &out, &length)
        }
        // A failed HMAC would leave 32 zero bytes that every "signature" of zeros matches: never return it.
        precondition(result != nil && length == 32, "HMAC-SHA-256 failed (out of memory)")
        return out
    }

    public static func hmacSHA256(key: [UInt8], message: some Collection<UInt8>) -> [UInt8] {
        Array(message).withUnsafeBytes { hmacSHA256(key: key, message: $0) }
    }

    /// Cryptographically secure random bytes.
    public static func randomBytes(_ count: Int) throws -> [UInt8] {
        var out = [UInt8](repeating: 0, count: count)
        guard RAND_bytes(&out, Int32(count)) == 1 else { throw OpenSSLError("RAND_bytes") }
        return out
    }

    /// Constant-time comparison (for MACs).
    public static func constantTimeEqual(_ a: [UInt8], _ b: [UInt8]) -> Bool {
        guard a.count == b.count else { return false }
        return a.withUnsafeBytes { x in b.withUnsafeBytes { y in CRYPTO_memcmp(x.baseAddress, y.baseAddress, a.count) == 0 } }
    }
}
