internal import COpenSSL
import NIOCore
import OpenSSLCrypto

/// One `SSL` over two memory BIOs: ciphertext from the network goes into `network`, ciphertext for the network
/// comes out of `output`, and the socket stays NIO's (sans-I/O, as nghttp2 is driven). Used on one event loop.
final class TLSConnection {
    private let ssl: OpaquePointer
    private let input: OpaquePointer
    private let output: OpaquePointer
    let context: TLSContext

    /// What one OpenSSL call reported.
    enum Outcome {
        case done
        case wantsInput
        case closedByPeer
        case failed(TLSError)
    }

    init(context: TLSContext, serverName: String? = nil) throws {
        ERR_clear_error()
        guard let ssl = SSL_new(context.context) else { throw TLSError(.setup, OpenSSLError("SSL_new").description) }
        guard let input = BIO_new(BIO_s_mem()), let output = BIO_new(BIO_s_mem()) else {
            SSL_free(ssl)
            throw TLSError(.setup, OpenSSLError("BIO_new").description)
        }
        // An empty memory BIO reads as "retry later", not as end of file.
        BIO_ctrl(input, BIO_C_SET_BUF_MEM_EOF_RETURN, -1, nil)
        BIO_ctrl(output, BIO_C_SET_BUF_MEM_EOF_RETURN, -1, nil)
        SSL_set_bio(ssl, input, output)  // the SSL owns both BIOs now
        self.ssl = ssl
        self.input = input
        self.output = output
        self.context = context
        if context.isServer {
            SSL_set_accept_state(ssl)
        } else {
            SSL_set_connect_state(ssl)
            if let serverName {
                let isAddress = X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl), serverName) == 1
                ERR_clear_error()
                // SNI carries host names only (RFC 6066 §3); an address is checked against the IP SANs.
                if !isAddress {
                    guard COpenSSL_SSL_set_tlsext_host_name(ssl, serverName) == 1, SSL_set1_host(ssl, serverName) == 1 else {
                        SSL_free(ssl)
                        throw TLSError(.setup, OpenSSLError("setting the server name \(serverName)").description)
                    }
                }
            }
        }
    }

    deinit {
        SSL_free(ssl)
    }

    /// Ciphertext received from the peer.
    func receive(_ bytes: UnsafeRawBufferPointer) {
        guard bytes.count > 0 else { return }
        _ = BIO_write(input, bytes.baseAddress, Int32(bytes.count))
    }

    /// Ciphertext received and not yet decrypted: at least the plaintext it holds.
    var pendingInput: Int { Int(BIO_ctrl_pending(input)) }

    /// Ciphertext to send, if any.
    var hasOutput: Bool { BIO_ctrl_pending(output) > 0 }

    /// Moves the ciphertext waiting for the network into `buffer`.
    func drainOutput(into buffer: inout ByteBuffer) {
        while true {
            let pending = Int(BIO_ctrl_pending(output))
            guard pending > 0 else { return }
            buffer.writeWithUnsafeMutableBytes(minimumWritableBytes: pending) { space in
                Int(max(0, BIO_read(output, space.baseAddress, Int32(min(space.count, Int(Int32.max))))))
            }
        }
    }

    func handshake() -> Outcome {
        ERR_clear_error()
        return outcome(SSL_do_handshake(ssl), during: .handshake)
    }

    /// Decrypts into `buffer`; `.done` with `count` bytes, or why not.
    func read(into buffer: UnsafeMutableRawBufferPointer, count: inout Int) -> Outcome {
        ERR_clear_error()
        var n = 0
        let rc = SSL_read_ex(ssl, buffer.baseAddress, buffer.count, &n)
        count = n
        return rc == 1 ? .done : outcome(rc, during: .read)
    }

    /// Encrypts all of `bytes` into the output (memory BIOs take everything).
    func write(_ bytes: UnsafeRawBufferPointer) -> Outcome {
        guard bytes.count > 0 else { return .done }
        ERR_clear_error()
        var written = 0
        let rc = SSL_write_ex(ssl, bytes.baseAddress, bytes.count, &written)
        return rc == 1 ? .done : outcome(rc, during: .write)
    }

    /// Frees the record buffers (about 34 KiB; OpenSSL allocates them again for the next record); false when
    /// they hold part of a record.
    func releaseBuffers() -> Bool {
        SSL_free_buffers(ssl) == 1
    }

    /// Queues close_notify (RFC 8446 §6.1); the peer's answer is not awaited.
    func shutdown() {
        ERR_clear_error()
        if SSL_is_init_finished(ssl) == 1 { _ = SSL_shutdown(ssl) }
        ERR_clear_error()
    }

    private func outcome(_ rc: Int32, during phase: TLSError.Phase) -> Outcome {
        let code = SSL_get_error(ssl, rc)
        switch code {
        case SSL_ERROR_NONE:
            return .done
        case SSL_ERROR_WANT_READ:
            return .wantsInput
        case SSL_ERROR_ZERO_RETURN:
            return .closedByPeer
        default:
            var reason = OpenSSLError("TLS \(phase.rawValue)").reason
            // The only callback that fails a handshake is the ClientHello check for ALPN (TLSContext).
            if context.isServer, phase == .handshake, reason.hasSuffix("callback failed") {
                reason = "the client offered no ALPN protocol (gRPC needs h2)"
            }
            let verify = SSL_get_verify_result(ssl)
            if verify != X509_V_OK, let text = X509_verify_cert_error_string(Int(verify)) {
                reason = "certificate verification failed: \(String(cString: text))"
            } else if reason.isEmpty {
                reason = code == SSL_ERROR_SYSCALL ? "the peer closed the connection" : "SSL error \(code)"
            }
            return .failed(TLSError(phase, reason))
        }
    }

    /// The negotiated session, once the handshake is done.
    func info() -> TLSConnectionInfo {
        var alpnData: UnsafePointer<UInt8>?
        var alpnLength: UInt32 = 0
        SSL_get0_alpn_selected(ssl, &alpnData, &alpnLength)
        let alpn = alpnData.map { String(decoding: UnsafeBufferPointer(start: $0, count: Int(alpnLength)), as: UTF8.self) }
        let cipher = SSL_get_current_cipher(ssl).flatMap { SSL_CIPHER_get_name($0) }.map { String(cString: $0) } ?? ""
        let version = SSL_get_version(ssl).map { String(cString: $0) } ?? ""
        let serverName = SSL_get_servername(ssl, TLSEXT_NAMETYPE_host_name).map { String(cString: $0) }
        var peer: PeerCertificate?
        if let certificate = SSL_get1_peer_certificate(ssl) {
            defer { X509_free(certificate) }
            // Only a certificate that verified is an identity.
            if SSL_get_verify_result(ssl) == X509_V_OK {
                peer = PeerCertificate(subject: TLSContext.subject(of: certificate), subjectAlternativeNames: Self.alternativeNames(of: certificate))
            }
        }
        return TLSConnectionInfo(
            version: version, cipher: cipher, alpn: alpn, serverName: serverName, resumed: SSL_session_reused(ssl) == 1,
            peerCertificate: peer
        )
    }

    /// DNS names, URIs (SPIFFE IDs), e-mail addresses and IP addresses, as `DNS:…`, `URI:…`, `email:…`, `IP:…`.
    private static func alternativeNames(of certificate: OpaquePointer) -> [String] {
        guard let raw = X509_get_ext_d2i(certificate, NID_subject_alt_name, nil, nil) else { return [] }
        let names = OpaquePointer(raw)
        defer { COpenSSL_GENERAL_NAMES_free(names) }
        var result: [String] = []
        for i in 0..<COpenSSL_sk_GENERAL_NAME_num(names) {
            guard let name = COpenSSL_sk_GENERAL_NAME_value(names, i) else { continue }
            let type = name.pointee.type
            func text(_ string: UnsafeMutablePointer<ASN1_STRING>?) -> String {
                guard let string, let data = ASN1_STRING_get0_data(string) else { return "" }
                return String(decoding: UnsafeBufferPointer(start: data, count: Int(ASN1_STRING_length(string))), as: UTF8.self)
            }
            switch type {
            case GEN_DNS: result.append("DNS:" + text(name.pointee.d.dNSName))
            case GEN_URI: result.append("URI:" + text(name.pointee.d.uniformResourceIdentifier))
            case GEN_EMAIL: result.append("email:" + text(name.pointee.d.rfc822Name))
            case GEN_IPADD:
                guard let address = name.pointee.d.iPAddress, let data = ASN1_STRING_get0_data(address) else { continue }
                let bytes = Array(UnsafeBufferPointer(start: data, count: Int(ASN1_STRING_length(address))))
                if bytes.count == 4 {
                    result.append("IP:" + bytes.map(String.init).joined(separator: "."))
                } else if bytes.count == 16 {
                    let groups = stride(from: 0, to: 16, by: 2).map { String(UInt16(bytes[$0]) << 8 | UInt16(bytes[$0 + 1]), radix: 16) }
                    result.append("IP:" + groups.joined(separator: ":"))
                }
            default: continue
            }
        }
        return result
    }
}

/// A failed TLS handshake, read or write, with OpenSSL's reason (or the certificate check that failed).
public struct TLSError: Error, Sendable, CustomStringConvertible {
    public enum Phase: String, Sendable {
        case setup, handshake, read, write
    }

    public var phase: Phase
    public var reason: String

    init(_ phase: Phase, _ reason: String) {
        self.phase = phase
        self.reason = reason
    }

    public var description: String { "TLS \(phase.rawValue) failed: \(reason)" }
}

/// What a connection negotiated, fired down the pipeline as an inbound user event when the handshake ends.
public struct TLSConnectionInfo: Sendable, Equatable {
    public var version: String
    public var cipher: String
    public var alpn: String?
    /// The SNI name the client asked for.
    public var serverName: String?
    public var resumed: Bool
    /// The peer's verified certificate (mutual TLS), nil when it sent none.
    public var peerCertificate: PeerCertificate?
}

public struct PeerCertificate: Sendable, Equatable {
    /// RFC 2253, e.g. `CN=payments,O=Example`.
    public var subject: String
    public var subjectAlternativeNames: [String]
}
