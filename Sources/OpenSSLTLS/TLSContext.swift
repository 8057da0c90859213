internal import COpenSSL
import OpenSSLCrypto

#if canImport(Glibc)
import Glibc
#endif

/// One `SSL_CTX`: certificates, keys, trust and policy, checked when made and then shared read-only by the
/// connections made from it (OpenSSL allows `SSL_new` from any thread, `openssl-threads(7)`). A reload is a
/// new context; connections made from the old one keep it (each `SSL` holds a reference).
public final class TLSContext: @unchecked Sendable {
    let context: OpaquePointer
    let isServer: Bool
    /// The server certificate's subject and the end of its validity (seconds since 1970), for logs and metrics.
    public let certificateSubject: String?
    public let certificateNotAfter: Int64?

    /// ALPN protocol list in wire format: gRPC runs on `h2` only (gRPC PROTOCOL-HTTP2.md, RFC 9113 §3.2).
    static let alpnH2: [UInt8] = [2, UInt8(ascii: "h"), UInt8(ascii: "2")]

    private init(context: OpaquePointer, isServer: Bool, subject: String?, notAfter: Int64?) {
        self.context = context
        self.isServer = isServer
        certificateSubject = subject
        certificateNotAfter = notAfter
    }

    deinit {
        SSL_CTX_free(context)
    }

    /// A server context. Every problem is a ``TLSConfigurationError`` naming the file and the reason.
    public static func server(_ configuration: TLSServerConfiguration, now: Int64? = nil) throws -> TLSContext {
        let now = now ?? Int64(time(nil))
        ERR_clear_error()
        guard let ctx = SSL_CTX_new(TLS_server_method()) else { throw TLSConfigurationError(file: nil, "\(OpenSSLError("SSL_CTX_new"))") }
        do {
            try configureVersions(ctx, minimum: configuration.minimumVersion)
            COpenSSL_SSL_CTX_set_server_options(ctx)
            guard SSL_CTX_set_cipher_list(ctx, configuration.cipherList) == 1 else {
                throw TLSConfigurationError(file: nil, "no usable cipher in \"\(configuration.cipherList)\"")
            }
            let leaf = try useCertificateAndKey(
                ctx, chainFile: configuration.certificateChainFile, keyFile: configuration.privateKeyFile,
                passphrase: configuration.keyPassphrase
            )
            let validity = try checkValidity(leaf, file: configuration.certificateChainFile, now: now)
            if let caFile = configuration.clientCAFile {
                try loadTrust(ctx, caFile: caFile)
                guard let names = SSL_load_client_CA_file(caFile) else {
                    throw TLSConfigurationError(file: caFile, "no certificate authority in it: \(OpenSSLError("SSL_load_client_CA_file").reason)")
                }
                SSL_CTX_set_client_CA_list(ctx, names)
                let mode = SSL_VERIFY_PEER | (configuration.clientAuthentication == .required ? SSL_VERIFY_FAIL_IF_NO_PEER_CERT : 0)
                SSL_CTX_set_verify(ctx, mode, nil)
            }
            // Resumed sessions of verified clients need an id context (SSL_CTX_set_session_id_context(3)).
            let id = Array("gateway".utf8)
            _ = SSL_CTX_set_session_id_context(ctx, id, UInt32(id.count))
            SSL_CTX_set_alpn_select_cb(ctx, selectH2, nil)
            SSL_CTX_set_client_hello_cb(ctx, requireALPN, nil)
            return TLSContext(context: ctx, isServer: true, subject: validity.subject, notAfter: validity.notAfter)
        } catch {
            SSL_CTX_free(ctx)
            ERR_clear_error()
            throw error
        }
    }

    /// A client context: the server's certificate is verified (against `caFile`, else the system's store) and
    /// its name checked; ALPN offers `h2`.
    public static func client(_ configuration: TLSClientConfiguration) throws -> TLSContext {
        ERR_clear_error()
        guard let ctx = SSL_CTX_new(TLS_client_method()) else { throw TLSConfigurationError(file: nil, "\(OpenSSLError("SSL_CTX_new"))") }
        do {
            try configureVersions(ctx, minimum: configuration.minimumVersion)
            if let caFile = configuration.caFile {
                try loadTrust(ctx, caFile: caFile)
            } else if SSL_CTX_set_default_verify_paths(ctx) != 1 {
                throw TLSConfigurationError(file: nil, "cannot load the system's certificate store: \(OpenSSLError("SSL_CTX_set_default_verify_paths").reason)")
            }
            SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, nil)
            switch (configuration.certificateChainFile, configuration.privateKeyFile) {
            case let (chain?, key?):
                _ = try useCertificateAndKey(ctx, chainFile: chain, keyFile: key, passphrase: nil)
            case (nil, nil):
                break
            default:
                throw TLSConfigurationError(file: nil, "a client certificate needs both the certificate and the key file")
            }
            // SSL_CTX_set_alpn_protos returns 0 on success.
            guard SSL_CTX_set_alpn_protos(ctx, alpnH2, UInt32(alpnH2.count)) == 0 else {
                throw TLSConfigurationError(file: nil, "\(OpenSSLError("SSL_CTX_set_alpn_protos"))")
            }
            return TLSContext(context: ctx, isServer: false, subject: nil, notAfter: nil)
        } catch {
            SSL_CTX_free(ctx)
            ERR_clear_error()
            throw error
        }
    }

    private static func configureVersions(_ ctx: OpaquePointer, minimum: TLSVersion) throws {
        let version = minimum == .v1_3 ? TLS1_3_VERSION : TLS1_2_VERSION
        guard COpenSSL_SSL_CTX_set_min_proto_version(ctx, version) == 1 else {
            throw TLSConfigurationError(file: nil, "\(OpenSSLError("setting the minimum TLS version"))")
        }
    }

    private static func loadTrust(_ ctx: OpaquePointer, caFile: String) throws {
        let pem = try readFile(caFile)
        guard pem.contains(subsequence: Array("-----BEGIN CERTIFICATE-----".utf8)) else {
            throw TLSConfigurationError(file: caFile, "no PEM certificate in it")
        }
        guard SSL_CTX_load_verify_locations(ctx, caFile, nil) == 1 else {
            throw TLSConfigurationError(file: caFile, "malformed certificate: \(OpenSSLError("loading certificate authorities").reason)")
        }
    }

    /// Loads the chain (leaf first) and its key, checks that they match, and returns the leaf (owned by ctx).
    private static func useCertificateAndKey(
        _ ctx: OpaquePointer, chainFile: String, keyFile: String, passphrase: String?
    ) throws -> OpaquePointer {
        let chainPEM = try readFile(chainFile)
        let certificates = try chainPEM.withUnsafeBytes { bytes -> [OpaquePointer] in
            guard let bio = BIO_new_mem_buf(bytes.baseAddress, Int32(bytes.count)) else { throw OpenSSLError("BIO_new_mem_buf") }
            defer { BIO_free(bio) }
            var certificates: [OpaquePointer] = []
            while let certificate = PEM_read_bio_X509(bio, nil, nil, nil) { certificates.append(certificate) }
            ERR_clear_error()  // the end of the file reads as "no start line"
            return certificates
        }
        defer { certificates.forEach { X509_free($0) } }
        guard let leaf = certificates.first else {
            throw TLSConfigurationError(file: chainFile, "no PEM certificate in it (or a malformed one)")
        }
        guard SSL_CTX_use_certificate(ctx, leaf) == 1 else {
            throw TLSConfigurationError(file: chainFile, "unusable certificate: \(OpenSSLError("SSL_CTX_use_certificate").reason)")
        }
        for intermediate in certificates.dropFirst() {
            // SSL_CTX_add1_chain_cert (a macro): takes its own reference.
            guard SSL_CTX_ctrl(ctx, SSL_CTRL_CHAIN_CERT, 1, UnsafeMutableRawPointer(intermediate)) == 1 else {
                throw TLSConfigurationError(file: chainFile, "unusable chain certificate: \(OpenSSLError("SSL_CTX_add1_chain_cert").reason)")
            }
        }

        let keyPEM = try readFile(keyFile)
        let encrypted = keyPEM.contains(subsequence: Array("ENCRYPTED".utf8))
        if encrypted, passphrase == nil {
            throw TLSConfigurationError(file: keyFile, "the key is encrypted and no passphrase was given")
        }
        let key: OpaquePointer? = keyPEM.withUnsafeBytes { bytes in
            guard let bio = BIO_new_mem_buf(bytes.baseAddress, Int32(bytes.count)) else { return nil }
            defer { BIO_free(bio) }
            if let passphrase {
                // With no callback, OpenSSL takes `u` as the NUL-terminated passphrase (pem_password_cb(3)).
                return passphrase.withCString { PEM_read_bio_PrivateKey(bio, nil, nil, UnsafeMutableRawPointer(mutating: $0)) }
            }
            // Never OpenSSL's default callback, which would prompt on the terminal.
            return PEM_read_bio_PrivateKey(bio, nil, { _, _, _, _ in -1 }, nil)
        }
        guard let key else {
            let reason = OpenSSLError("reading the key").reason
            throw TLSConfigurationError(
                file: keyFile, encrypted ? "cannot decrypt the key (wrong passphrase?): \(reason)" : "no PEM private key in it (or a malformed one): \(reason)"
            )
        }
        defer { EVP_PKEY_free(key) }
        guard SSL_CTX_use_PrivateKey(ctx, key) == 1, SSL_CTX_check_private_key(ctx) == 1 else {
            ERR_clear_error()
            throw TLSConfigurationError(file: keyFile, "the key does not match the certificate in \(chainFile)")
        }
        return SSL_CTX_get0_certificate(ctx)
    }

    private static func checkValidity(_ leaf: OpaquePointer, file: String, now: Int64) throws -> (subject: String, notAfter: Int64) {
        let subject = Self.subject(of: leaf)
        guard let notBefore = seconds(X509_get0_notBefore(leaf)), let notAfter = seconds(X509_get0_notAfter(leaf)) else {
            throw TLSConfigurationError(file: file, "the certificate's validity dates cannot be read")
        }
        if notAfter < now {
            throw TLSConfigurationError(file: file, "the certificate (\(subject)) expired at \(utc(notAfter))")
        }
        if notBefore > now {
            throw TLSConfigurationError(file: file, "the certificate (\(subject)) is not valid before \(utc(notBefore))")
        }
        return (subject, notAfter)
    }

    private static func seconds(_ time: UnsafePointer<ASN1_TIME>?) -> Int64? {
        var parts = tm()
        guard let time, ASN1_TIME_to_tm(time, &parts) == 1 else { return nil }
        return Int64(timegm(&parts))
    }

    /// `2030-03-16T03:10:42Z`.
    public static func utc(_ seconds: Int64) -> String {
        var t = time_t(seconds)
        var parts = tm()
        gmtime_r(&t, &parts)
        var buffer = [CChar](repeating: 0, count: 32)
        let n = strftime(&buffer, buffer.count, "%Y-%m-%dT%H:%M:%SZ", &parts)
        return String(decoding: buffer.prefix(n).map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    /// A certificate's subject in RFC 2253 form, e.g. `CN=payments,O=Example`.
    static func subject(of certificate: OpaquePointer) -> String {
        guard let bio = BIO_new(BIO_s_mem()) else { return "" }
        defer { BIO_free(bio) }
        X509_NAME_print_ex(bio, X509_get_subject_name(certificate), 0, COpenSSL_XN_FLAG_RFC2253())
        return drain(bio)
    }

    static func drain(_ bio: OpaquePointer) -> String {
        var bytes: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 512)
        while true {
            let n = BIO_read(bio, &chunk, Int32(chunk.count))
            guard n > 0 else { break }
            bytes += chunk[0..<Int(n)]
        }
        return String(decoding: bytes, as: UTF8.self)
    }

    static func readFile(_ path: String) throws -> [UInt8] {
        guard let file = fopen(path, "rb") else {
            throw TLSConfigurationError(file: path, "cannot read it: \(String(cString: strerror(errno)))")
        }
        defer { fclose(file) }
        var bytes: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 16 << 10)
        while true {
            let n = fread(&chunk, 1, chunk.count, file)
            if n == 0 { break }
            bytes += chunk[0..<n]
            guard bytes.count <= 1 << 20 else { throw TLSConfigurationError(file: path, "larger than 1 MiB: not a PEM file") }
        }
        guard ferror(file) == 0 else { throw TLSConfigurationError(file: path, "cannot read it: \(String(cString: strerror(errno)))") }
        return bytes
    }
}

/// ALPN (RFC 7301 §3.2): choose `h2` from the client's list, or end the handshake with
/// `no_application_protocol`.
private func selectH2(
    _ ssl: OpaquePointer?, _ out: UnsafeMutablePointer<UnsafePointer<UInt8>?>?, _ outLength: UnsafeMutablePointer<UInt8>?,
    _ offered: UnsafePointer<UInt8>?, _ offeredLength: UInt32, _ arg: UnsafeMutableRawPointer?
) -> Int32 {
    guard let offered, let out, let outLength else { return SSL_TLSEXT_ERR_ALERT_FATAL }
    var i = 0
    let end = Int(offeredLength)
    while i < end {
        let length = Int(offered[i])
        if length == 2, i + 2 < end, offered[i + 1] == UInt8(ascii: "h"), offered[i + 2] == UInt8(ascii: "2") {
            out.pointee = offered + i + 1
            outLength.pointee = 2
            return SSL_TLSEXT_ERR_OK
        }
        i += 1 + length
    }
    return SSL_TLSEXT_ERR_ALERT_FATAL
}

/// A client that offers no ALPN at all would otherwise complete the handshake and then speak something
/// other than h2; refuse it in the handshake, with the same alert.
private func requireALPN(_ ssl: OpaquePointer?, _ alert: UnsafeMutablePointer<Int32>?, _ arg: UnsafeMutableRawPointer?) -> Int32 {
    var data: UnsafePointer<UInt8>?
    var length = 0
    if SSL_client_hello_get0_ext(ssl, UInt32(TLSEXT_TYPE_application_layer_protocol_negotiation), &data, &length) == 1 {
        return SSL_CLIENT_HELLO_SUCCESS
    }
    alert?.pointee = SSL_AD_NO_APPLICATION_PROTOCOL
    return SSL_CLIENT_HELLO_ERROR
}

extension Array where Element == UInt8 {
    func contains(subsequence: [UInt8]) -> Bool {
        guard subsequence.count <= count else { return false }
        return (0...(count - subsequence.count)).contains { self[$0..<($0 + subsequence.count)].elementsEqual(subsequence) }
    }
}
