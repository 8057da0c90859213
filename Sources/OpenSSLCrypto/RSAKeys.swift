internal import COpenSSL

/// An RSA public key (an `EVP_PKEY`), parsed once and shared read-only between threads, which OpenSSL
/// allows (`openssl-threads(7)`); each verification uses its own `EVP_MD_CTX`.
///
/// The key also holds a verification context initialized once (`EVP_DigestVerifyInit` with SHA-256), which
/// each verification copies instead of initializing anew: initialization looks up the provider's algorithms
/// and builds the key's provider context, about 7% of an RS256 verification (measured with
/// `scripts/bench-auth`; see docs/design-notes.md). The template is only ever read after `init`, and
/// `EVP_MD_CTX_copy_ex` takes it `const`.
public final class RSAPublicKey: @unchecked Sendable {
    let key: OpaquePointer
    private let verifyTemplate: OpaquePointer

    /// The public key of a PEM X.509 certificate. Only a container for the key: like every Firebase SDK, no
    /// chain, date or self-signature check (Google's certificates are self-signed with SHA-1).
    public convenience init(certificatePEM pem: [UInt8], minimumBits: Int32 = 2048) throws {
        let certificate: OpaquePointer = try pem.withUnsafeBytes { bytes in
            guard let bio = BIO_new_mem_buf(bytes.baseAddress, Int32(bytes.count)) else { throw OpenSSLError("BIO_new_mem_buf") }
            defer { BIO_free(bio) }
            guard let x509 = PEM_read_bio_X509(bio, nil, nil, nil) else { throw OpenSSLError("reading a PEM certificate") }
            return x509
        }
        defer { X509_free(certificate) }
        guard let key = X509_get_pubkey(certificate) else { throw OpenSSLError("X509_get_pubkey") }
        try self.init(checking: key, minimumBits: minimumBits)
    }

    /// A PEM `PUBLIC KEY` (SubjectPublicKeyInfo).
    public convenience init(publicKeyPEM pem: [UInt8], minimumBits: Int32 = 2048) throws {
        let key: OpaquePointer = try pem.withUnsafeBytes { bytes in
            guard let bio = BIO_new_mem_buf(bytes.baseAddress, Int32(bytes.count)) else { throw OpenSSLError("BIO_new_mem_buf") }
            defer { BIO_free(bio) }
            guard let key = PEM_read_bio_PUBKEY(bio, nil, nil, nil) else { throw OpenSSLError("reading a PEM public key") }
            return key
        }
        try self.init(checking: key, minimumBits: minimumBits)
    }

    private init(checking key: OpaquePointer, minimumBits: Int32) throws {
        guard EVP_PKEY_get_base_id(key) == COpenSSL_EVP_PKEY_RSA() else {
            EVP_PKEY_free(key)
            throw OpenSSLError("the certificate is not an RSA key")
        }
        guard EVP_PKEY_get_bits(key) >= minimumBits else {
            EVP_PKEY_free(key)
            throw OpenSSLError("the RSA key is shorter than \(minimumBits) bits")
        }
        guard let template = EVP_MD_CTX_new() else {
            EVP_PKEY_free(key)
            throw OpenSSLError("EVP_MD_CTX_new")
        }
        guard EVP_DigestVerifyInit(template, nil, Digest.sha256Algorithm, nil, key) == 1 else {
            EVP_MD_CTX_free(template)
            EVP_PKEY_free(key)
            throw OpenSSLError("EVP_DigestVerifyInit")
        }
        self.key = key
        verifyTemplate = template
    }

    deinit {
        EVP_MD_CTX_free(verifyTemplate)
        EVP_PKEY_free(key)
    }

    /// The modulus size in bytes: an RS256 signature has exactly this length.
    public var signatureSize: Int { Int(EVP_PKEY_get_size(key)) }

    /// RSASSA-PKCS1-v1_5 with SHA-256 (RS256) over `message`. True only when OpenSSL says exactly 1.
    public func verifySHA256(signature: UnsafeRawBufferPointer, message: UnsafeRawBufferPointer) -> Bool {
        guard signature.count == signatureSize, let context = EVP_MD_CTX_new() else { return false }
        defer { EVP_MD_CTX_free(context) }
        guard EVP_MD_CTX_copy_ex(context, verifyTemplate) == 1 else {
            ERR_clear_error()
            return false
        }
        let result = EVP_DigestVerify(
            context,
            signature.baseAddress?.assumingMemoryBound(to: UInt8.self), signature.count,
            message.baseAddress?.assumingMemoryBound(to: UInt8.self), message.count
        )
        if result != 1 { ERR_clear_error() }
        return result == 1
    }
}

/// An RSA private key: the gateway's local-mode signing key.
public final class RSAPrivateKey: @unchecked Sendable {
    let key: OpaquePointer

    public static func generate(bits: UInt32 = 2048) throws -> RSAPrivateKey {
        guard let key = COpenSSL_RSA_generate(bits) else { throw OpenSSLError("generating an RSA key") }
        return RSAPrivateKey(key: key)
    }

    /// A PEM private key (PKCS#8 or traditional).
    public init(pem: [UInt8]) throws {
        key = try pem.withUnsafeBytes { bytes in
            guard let bio = BIO_new_mem_buf(bytes.baseAddress, Int32(bytes.count)) else { throw OpenSSLError("BIO_new_mem_buf") }
            defer { BIO_free(bio) }
            guard let key = PEM_read_bio_PrivateKey(bio, nil, nil, nil) else { throw OpenSSLError("reading a PEM private key") }
            return key
        }
        guard EVP_PKEY_get_base_id(key) == COpenSSL_EVP_PKEY_RSA() else { throw OpenSSLError("the key is not an RSA key") }
    }

    private init(key: OpaquePointer) {
        self.key = key
    }

    deinit {
        EVP_PKEY_free(key)
    }

    /// PKCS#8 PEM, unencrypted.
    public func pem() throws -> [UInt8] {
        try Self.writePEM { PEM_write_bio_PrivateKey($0, key, nil, nil, 0, nil, nil) }
    }

    /// RSASSA-PKCS1-v1_5 with SHA-256 (RS256).
    public func signSHA256(_ message: UnsafeRawBufferPointer) throws -> [UInt8] {
        guard let context = EVP_MD_CTX_new() else { throw OpenSSLError("EVP_MD_CTX_new") }
        defer { EVP_MD_CTX_free(context) }
        guard EVP_DigestSignInit(context, nil, Digest.sha256Algorithm, nil, key) == 1 else { throw OpenSSLError("EVP_DigestSignInit") }
        var length = 0
        let input = message.baseAddress?.assumingMemoryBound(to: UInt8.self)
        guard EVP_DigestSign(context, nil, &length, input, message.count) == 1 else { throw OpenSSLError("EVP_DigestSign") }
        var signature = [UInt8](repeating: 0, count: length)
        guard EVP_DigestSign(context, &signature, &length, input, message.count) == 1 else { throw OpenSSLError("EVP_DigestSign") }
        return Array(signature.prefix(length))
    }

    /// A self-signed certificate for this key, shaped like Google's securetoken certificates (the key's
    /// container in the `{kid: PEM}` documents).
    public func selfSignedCertificatePEM(commonName: String, validDays: Int) throws -> [UInt8] {
        guard let x509 = X509_new() else { throw OpenSSLError("X509_new") }
        defer { X509_free(x509) }
        X509_set_version(x509, 2)
        let serial = try Digest.randomBytes(8)
        guard let serialNumber = BN_bin2bn(serial, Int32(serial.count), nil) else { throw OpenSSLError("BN_bin2bn") }
        defer { BN_free(serialNumber) }
        BN_to_ASN1_INTEGER(serialNumber, X509_get_serialNumber(x509))
        X509_gmtime_adj(X509_getm_notBefore(x509), -60)
        X509_gmtime_adj(X509_getm_notAfter(x509), validDays * 86_400)
        X509_set_pubkey(x509, key)
        let name = X509_get_subject_name(x509)
        guard X509_NAME_add_entry_by_txt(name, "CN", COpenSSL_MBSTRING_ASC(), commonName, -1, -1, 0) == 1 else {
            throw OpenSSLError("setting the certificate's name")
        }
        X509_set_issuer_name(x509, name)
        guard X509_sign(x509, key, Digest.sha256Algorithm) > 0 else { throw OpenSSLError("X509_sign") }
        return try Self.writePEM { PEM_write_bio_X509($0, x509) }
    }

    private static func writePEM(_ write: (OpaquePointer) -> Int32) throws -> [UInt8] {
        guard let bio = BIO_new(BIO_s_mem()) else { throw OpenSSLError("BIO_new") }
        defer { BIO_free(bio) }
        guard write(bio) == 1 else { throw OpenSSLError("writing PEM") }
        var data: UnsafeMutablePointer<CChar>?
        let length = BIO_ctrl(bio, BIO_CTRL_INFO, 0, &data)
        guard length > 0, let data else { throw OpenSSLError("reading PEM") }
        return Array(UnsafeRawBufferPointer(start: data, count: length))
    }
}
