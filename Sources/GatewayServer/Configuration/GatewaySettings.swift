import AWSAdapters
import Foundation
import Logging
import OpenSSLTLS

/// How log lines are written: swift-log's text lines, or one JSON object per line (``JSONLogHandler``).
public enum LogFormat: String, Sendable, CaseIterable {
    case text, json
}

/// Everything the gateway process is configured with. ``ConfigurationSources`` fills it from flags, `GATEWAY_*`
/// environment variables and a JSON file, in that order of precedence, over these defaults.
public struct GatewaySettings: Sendable, Equatable {
    public struct Log: Sendable, Equatable {
        public var level: Logger.Level = .info
        public var format: LogFormat = .text

        public init() {}
    }

    public struct Metrics: Sendable, Equatable {
        /// The port of the Prometheus endpoint (`GET /metrics`); nil serves no metrics, 0 picks a free port.
        public var port: Int?
        /// The metrics listener's address: loopback unless chosen, whatever the gRPC listener's.
        public var host = "127.0.0.1"

        public init() {}
    }

    /// What one client, and all of them, may take (README, "Limits"). Durations in seconds; 0 turns the
    /// idle and age limits off.
    public struct Limits: Sendable, Equatable {
        public var maxConnections = 10_000
        public var maxConnectionsPerAddress = 1_000
        public var maxConcurrentStreams = 1_000
        public var maxReceiveMessageBytes = 4 << 20
        public var maxConnectionBufferBytes = 32 << 20
        public var maxConnectionSendBufferBytes = 32 << 20
        public var maxHeaderListBytes = 16 << 10
        public var handshakeTimeoutSeconds = 10
        public var maxConnectionIdleSeconds = 3_600
        public var maxConnectionAgeSeconds = 0
        public var maxConnectionAgeGraceSeconds = 30
        /// No call lasts longer (subscriptions resume where they stopped); 0: no limit.
        public var maxCallSeconds = 86_400
        /// A subscriber that leaves an event unread this long is ended with RESOURCE_EXHAUSTED.
        public var subscriberStallSeconds = 60
        public var keepaliveTimeSeconds = 7_200
        public var keepaliveTimeoutSeconds = 20
        public var maxUploadBytes: Int64 = 4 << 30
        /// Calls per second and burst per user, by class (RateLimitInterceptor); a rate of 0 turns it off.
        public var readsPerSecond = 1000
        public var readBurst = 2000
        public var writesPerSecond = 500
        public var writeBurst = 1000

        var rateLimits: RateLimitInterceptor.Settings {
            var settings = RateLimitInterceptor.Settings()
            settings.read = .init(perSecond: Double(readsPerSecond), burst: Double(readBurst))
            settings.write = .init(perSecond: Double(writesPerSecond), burst: Double(writeBurst))
            return settings
        }

        public init() {}
    }

    /// TLS for the gRPC listener (OpenSSL). Without a certificate the gateway speaks h2c, which it allows on
    /// loopback only unless ``GatewaySettings/insecurePlaintext`` says otherwise.
    public struct TLS: Sendable, Equatable {
        public var certificateFile: String?
        public var keyFile: String?
        public var keyPassphrase: String?
        public var clientCAFile: String?
        public var clientAuthentication: TLSServerConfiguration.ClientAuthentication = .required
        public var ciphers = TLSServerConfiguration.modernCiphers
        public var minimumVersion: TLSVersion = .v1_2

        public init() {}

        /// The OpenSSL configuration, when a certificate is set.
        public var server: TLSServerConfiguration? {
            guard let certificateFile, let keyFile else { return nil }
            var configuration = TLSServerConfiguration(certificateChainFile: certificateFile, privateKeyFile: keyFile)
            configuration.keyPassphrase = keyPassphrase
            configuration.clientCAFile = clientCAFile
            configuration.clientAuthentication = clientAuthentication
            configuration.cipherList = ciphers
            configuration.minimumVersion = minimumVersion
            return configuration
        }
    }

    /// Where records, events and blobs live.
    public enum Backend: String, Sendable, CaseIterable {
        /// SQLite and files under the data directory: one gateway, no setup.
        case embedded
        /// DynamoDB, S3 (and SNS): any number of gateways sharing one table and bucket.
        case aws
    }

    public var host = "127.0.0.1"
    public var port = 50051
    public var backend = Backend.embedded
    /// The AWS backend's table, bucket, endpoints and region (and the SNS topic, with either backend). The
    /// region defaults to `AWS_REGION` (or `AWS_DEFAULT_REGION`), as in the AWS SDKs.
    public var aws: AWSBackend.Settings = {
        var settings = AWSBackend.Settings()
        let environment = ProcessInfo.processInfo.environment
        if let region = environment["AWS_REGION"] ?? environment["AWS_DEFAULT_REGION"], !region.isEmpty { settings.region = region }
        return settings
    }()
    /// How long S3 presigned download URLs stay valid when the caller asks for no lifetime.
    public var s3PresignExpirySeconds = 900
    /// The data directory as given (relative paths are resolved against the working directory).
    public var dataDirectory = "data"
    public var log = Log()
    public var metrics = Metrics()
    public var auth = AuthSettings()
    public var limits = Limits()
    public var tls = TLS()
    /// Serve h2c on a non-loopback address (behind a proxy that terminates TLS, or on a trusted network).
    public var insecurePlaintext = false

    public init() {}

    public static var defaults: Self { Self() }

    public static func defaults(configure: (inout Self) -> Void) -> Self {
        var settings = Self()
        configure(&settings)
        return settings
    }

    public var dataDirectoryURL: URL {
        URL(fileURLWithPath: dataDirectory, isDirectory: true)
    }

    /// What the composition root needs.
    public var gatewayConfiguration: GatewayConfiguration {
        GatewayConfiguration(
            host: host, port: port, dataDirectory: dataDirectoryURL, auth: auth,
            defaultLinkLifetimeSeconds: backend == .aws ? Int64(s3PresignExpirySeconds) : 15 * 60, limits: limits
        )
    }

    /// The checks that involve several settings at once, made before serving.
    public func validateForServing() throws(ConfigurationError) {
        if backend == .aws && aws.bucket == nil {
            throw ConfigurationError(.conflict, "--backend aws keeps blobs in S3: set --s3-bucket (GATEWAY_S3_BUCKET)", key: "aws.s3_bucket")
        }
        if auth.isLocalMode && !GatewayConfiguration.isLoopback(host) {
            throw ConfigurationError(.conflict, """
                local mode (no --firebase-project-id) trusts a key in the data directory and serves loopback only; \
                \(host) is not a loopback address
                """, key: "host")
        }
        switch (tls.certificateFile, tls.keyFile) {
        case (nil, .some):
            throw ConfigurationError(.conflict, "--tls-key needs its certificate: set --tls-cert (GATEWAY_TLS_CERT)", key: "tls.cert_file")
        case (.some, nil):
            throw ConfigurationError(.conflict, "--tls-cert needs its private key: set --tls-key (GATEWAY_TLS_KEY)", key: "tls.key_file")
        case (nil, nil):
            if tls.clientCAFile != nil {
                throw ConfigurationError(.conflict, "--tls-client-ca asks clients for certificates over TLS: set --tls-cert and --tls-key", key: "tls.client_ca")
            }
            if !insecurePlaintext && !GatewayConfiguration.isLoopback(host) {
                throw ConfigurationError(.conflict, """
                    \(host) is not a loopback address and no certificate is set: tokens would cross the network in \
                    plaintext. Set --tls-cert and --tls-key, or --insecure-plaintext if a proxy terminates TLS
                    """, key: "host")
            }
        case (.some, .some):
            break
        }
        if auth.certificateServices?.isEmpty == false && tls.clientCAFile == nil {
            throw ConfigurationError(.conflict, "--mtls-services admits services by verified client certificates: set --tls-client-ca", key: "auth.mtls_services")
        }
    }
}
