internal import COpenSSL

/// SHA-256 of bytes that arrive in pieces, such as an upload's chunks. Not `Sendable`: one owner feeds it.
public final class SHA256Hasher {
    private let context: OpaquePointer

    public init() {
        guard let context = EVP_MD_CTX_new() else { fatalError("\(OpenSSLError("EVP_MD_CTX_new"))") }
        self.context = context
        Self.check(EVP_DigestInit_ex2(context, Digest.sha256Algorithm, nil), "EVP_DigestInit_ex2")
    }

    deinit {
        EVP_MD_CTX_free(context)
    }

    /// Appends `bytes` to the hashed input.
    public func update(_ bytes: UnsafeRawBufferPointer) {
        Self.check(EVP_DigestUpdate(context, bytes.baseAddress, bytes.count), "EVP_DigestUpdate")
    }

    /// Appends `bytes` to the hashed input.
    public func update(_ bytes: [UInt8]) {
        bytes.withUnsafeBytes { update($0) }
    }

    /// The 32-byte digest of everything given so far. The hasher then starts over with empty input.
    public func finalize() -> [UInt8] {
        var digest = [UInt8](repeating: 0, count: 32)
        var length: UInt32 = 0
        Self.check(EVP_DigestFinal_ex(context, &digest, &length), "EVP_DigestFinal_ex")
        Self.check(EVP_DigestInit_ex2(context, Digest.sha256Algorithm, nil), "EVP_DigestInit_ex2")
        return digest
    }

    // With a fetched SHA-256 and a live context these calls fail only when memory runs out.
    private static func check(_ result: Int32, _ operation: String) {
        guard result == 1 else { fatalError("\(OpenSSLError(operation))") }
    }
}
