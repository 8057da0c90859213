/// What a TLS server presents and asks of its clients. Files are PEM; they are read when a ``TLSContext`` is
/// made from this, so a reload (a new context from the same configuration) picks up replaced files.
public struct TLSServerConfiguration: Sendable {
    /// The certificate, followed by the intermediates that chain it to a root (leaf first).
    public var certificateChainFile: String
    /// The private key of the certificate (RSA or ECDSA; PKCS#8 or traditional; encrypted with `keyPassphrase`).
    public var privateKeyFile: String
    public var keyPassphrase: String?
    /// Roots that a client certificate must chain to; with it, clients are asked for a certificate.
    public var clientCAFile: String?
    public var clientAuthentication: ClientAuthentication = .required
    /// TLS 1.2 cipher list (OpenSSL syntax); TLS 1.3 suites are OpenSSL's defaults, all AEAD.
    public var cipherList = TLSServerConfiguration.modernCiphers
    public var minimumVersion: TLSVersion = .v1_2

    /// ECDHE with AES-GCM or ChaCha20-Poly1305 only: forward secrecy and AEAD (what grpc-go and BoringSSL
    /// offer by default; Mozilla's "intermediate" profile without the DHE suites).
    public static let modernCiphers =
        "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:ECDHE-ECDSA-AES256-GCM-SHA384:"
        + "ECDHE-RSA-AES256-GCM-SHA384:ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305"

    /// Whether a client without a certificate (only asked when ``clientCAFile`` is set) may connect.
    public enum ClientAuthentication: String, Sendable, CaseIterable {
        case optional, required
    }

    public init(certificateChainFile: String, privateKeyFile: String) {
        self.certificateChainFile = certificateChainFile
        self.privateKeyFile = privateKeyFile
    }
}

/// How a TLS client checks its server and what it presents.
public struct TLSClientConfiguration: Sendable {
    /// Roots that the server's certificate must chain to; nil: the system's store.
    public var caFile: String?
    /// The name sent as SNI and checked against the certificate; nil: the host connected to.
    public var serverName: String?
    /// A client certificate and key, for servers that require mutual TLS.
    public var certificateChainFile: String?
    public var privateKeyFile: String?
    public var minimumVersion: TLSVersion = .v1_2

    public init(caFile: String? = nil, serverName: String? = nil) {
        self.caFile = caFile
        self.serverName = serverName
    }
}

public enum TLSVersion: String, Sendable, CaseIterable {
    case v1_2 = "1.2", v1_3 = "1.3"
}

/// A configuration OpenSSL cannot use: the file concerned and why, in words for the operator.
public struct TLSConfigurationError: Error, Sendable, CustomStringConvertible {
    public var file: String?
    public var reason: String

    public init(file: String?, _ reason: String) {
        self.file = file
        self.reason = reason
    }

    public var description: String {
        file.map { "\($0): \(reason)" } ?? reason
    }
}
