import ArgumentParser
import Foundation
import GatewayServer

// Every setting comes from its flag, else its `GATEWAY_*` environment variable, else the configuration file
// (`--config`, JSON), else its default: resolved in one place, `ConfigurationSources` (GatewayServer), whose
// table `Setting.gateway` names each setting's flag, variable and file key. The option groups below only hand
// over what was typed.

/// Flag values for the resolver, by flag name; nil when the flag was not given.
protocol SettingFlags {
    var flagValues: [String: String?] { get }
}

/// Resolves every setting from the flags of these option groups, the environment and the configuration file.
func resolveConfiguration(_ groups: [any SettingFlags], config: ConfigOptions) throws -> ResolvedConfiguration {
    let environment = ProcessInfo.processInfo.environment
    var flags: [String: String] = [:]
    for group in groups {
        for case (let flag, let value?) in group.flagValues { flags[flag] = value }
    }
    let file = try ConfigurationSources.configurationFile(flag: config.config, environment: environment)
    return try ConfigurationSources(flags: flags, environment: environment, file: file).resolve()
}

struct ConfigOptions: ParsableArguments {
    @Option(help: ArgumentHelp("""
        JSON configuration file (env GATEWAY_CONFIG). Keys mirror the flags, nested by prefix: {"host": …, "port": …, \
        "data_dir": …, "log": {"level": …, "format": …}, "metrics_port": …, "auth": {"firebase_project_id": …, \
        "leeway_seconds": …}}. Unknown keys are an error. A flag beats its environment variable, which beats the file. \
        Only JSON for now (a .toml file is refused).
        """, valueName: "file"))
    var config: String?
}

struct DataOptions: ParsableArguments, SettingFlags {
    @Option(help: "Directory for the gateway's data and local-mode keys (env GATEWAY_DATA_DIR; default ./data).")
    var dataDir: String?

    var flagValues: [String: String?] { ["--data-dir": dataDir] }
}

struct ServerOptions: ParsableArguments, SettingFlags {
    @Option(help: "Address to listen on (env GATEWAY_HOST; default 127.0.0.1).")
    var host: String?

    @Option(help: "Port to listen on; 0 picks a free one (env GATEWAY_PORT; default 50051).")
    var port: Int?

    @Option(help: "Least severe level logged: trace, debug, info, notice, warning, error or critical (env GATEWAY_LOG_LEVEL; default info).")
    var logLevel: String?

    @Option(help: "Log lines on standard error as text or json, one JSON object per line (env GATEWAY_LOG_FORMAT; default text).")
    var logFormat: String?

    @Option(help: "Serve Prometheus metrics at http://<metrics-host>:<port>/metrics; 0 picks a free port (env GATEWAY_METRICS_PORT; default: no metrics).")
    var metricsPort: Int?

    @Option(help: "Address of the metrics listener (env GATEWAY_METRICS_HOST; default 127.0.0.1, whatever --host is).")
    var metricsHost: String?

    var flagValues: [String: String?] {
        [
            "--host": host, "--port": port.map { "\($0)" }, "--log-level": logLevel, "--log-format": logFormat,
            "--metrics-port": metricsPort.map { "\($0)" }, "--metrics-host": metricsHost,
        ]
    }
}

struct AuthOptions: ParsableArguments, SettingFlags {
    @Option(help: "Firebase project whose tokens are accepted (env GATEWAY_FIREBASE_PROJECT_ID). Without it the gateway runs in local mode: it trusts only its own key and listens on loopback only.")
    var firebaseProjectId: String?

    @Option(help: "URL of the ID-token signing certificates (env GATEWAY_FIREBASE_CERT_URL; default Google's).")
    var firebaseCertUrl: String?

    @Option(help: "URL of the session-cookie signing certificates (env GATEWAY_FIREBASE_SESSION_CERT_URL; default Google's).")
    var firebaseSessionCertUrl: String?

    @Option(help: "Clock skew tolerated on token times, 0 to 300 seconds (env GATEWAY_AUTH_LEEWAY_SECONDS; default 60).")
    var authLeewaySeconds: Int?

    @Option(help: "Comma-separated tenant ids to accept; others are refused (env GATEWAY_FIREBASE_TENANTS; default: any tenant).")
    var firebaseTenants: String?

    @Option(help: "Comma-separated identities of backend services admitted without a token by their client certificate (mutual TLS, needs --tls-client-ca), with an administrator's rights: a SAN such as spiffe://example.org/payments or payments.internal, or a subject such as CN=payments,O=Example (env GATEWAY_MTLS_SERVICES).")
    var mtlsServices: String?

    @Flag(help: "Ask Identity Toolkit whether each token's user is disabled or has revoked its tokens; answers are cached 30 s (env GATEWAY_FIREBASE_CHECK_REVOKED=1; needs --firebase-service-account).")
    var firebaseCheckRevoked = false

    @Option(help: "Service account key file (JSON) for the revocation check (env GATEWAY_FIREBASE_SERVICE_ACCOUNT).")
    var firebaseServiceAccount: String?

    @Option(help: "Base URL of the Identity Toolkit API (env GATEWAY_IDENTITY_TOOLKIT_URL; default Google's).")
    var identityToolkitUrl: String?

    var flagValues: [String: String?] {
        [
            "--firebase-project-id": firebaseProjectId, "--firebase-cert-url": firebaseCertUrl,
            "--firebase-session-cert-url": firebaseSessionCertUrl, "--auth-leeway-seconds": authLeewaySeconds.map { "\($0)" },
            "--firebase-tenants": firebaseTenants, "--mtls-services": mtlsServices, "--firebase-check-revoked": firebaseCheckRevoked ? "true" : nil,
            "--firebase-service-account": firebaseServiceAccount, "--identity-toolkit-url": identityToolkitUrl,
        ]
    }
}

struct StorageOptions: ParsableArguments, SettingFlags {
    @Option(help: "Where records, events and blobs live: embedded (SQLite and files in --data-dir) or aws (DynamoDB, S3) (env GATEWAY_BACKEND; default embedded).")
    var backend: String?

    @Option(help: "AWS region (env GATEWAY_AWS_REGION, else AWS_REGION; default us-east-1).")
    var awsRegion: String?

    @Option(help: "Endpoint of every AWS service, e.g. a local AWS-compatible server (env GATEWAY_AWS_ENDPOINT_URL; default AWS's).")
    var awsEndpointUrl: String?

    @Option(help: "DynamoDB endpoint, overriding --aws-endpoint-url (env GATEWAY_DYNAMODB_ENDPOINT_URL).")
    var dynamodbEndpointUrl: String?

    @Option(help: "S3 endpoint, overriding --aws-endpoint-url; objects are then addressed path-style (env GATEWAY_S3_ENDPOINT_URL).")
    var s3EndpointUrl: String?

    @Option(help: "SNS endpoint, overriding --aws-endpoint-url (env GATEWAY_SNS_ENDPOINT_URL).")
    var snsEndpointUrl: String?

    @Option(help: "STS endpoint for web identity credentials, overriding --aws-endpoint-url (env GATEWAY_STS_ENDPOINT_URL).")
    var stsEndpointUrl: String?

    @Option(help: "The DynamoDB table of users, sessions, files and events (env GATEWAY_DYNAMODB_TABLE; default gateway). `gateway migrate` creates it.")
    var dynamodbTable: String?

    @Option(help: "The S3 bucket of blobs, needed by --backend aws (env GATEWAY_S3_BUCKET).")
    var s3Bucket: String?

    @Option(help: "Publish every event of the log to this SNS topic, with either backend (env GATEWAY_SNS_TOPIC_ARN; default: none).")
    var snsTopicArn: String?

    @Option(help: "Seconds an S3 presigned download URL lasts when the caller asks for no lifetime (env GATEWAY_S3_PRESIGN_EXPIRY; default 900).")
    var s3PresignExpiry: Int?

    @Option(help: "Seconds one AWS request may take before it is retried or fails (env GATEWAY_AWS_TIMEOUT_SECONDS; default 10).")
    var awsTimeoutSeconds: Int?

    var flagValues: [String: String?] {
        [
            "--backend": backend, "--aws-region": awsRegion, "--aws-endpoint-url": awsEndpointUrl,
            "--dynamodb-endpoint-url": dynamodbEndpointUrl, "--s3-endpoint-url": s3EndpointUrl, "--sns-endpoint-url": snsEndpointUrl,
            "--sts-endpoint-url": stsEndpointUrl, "--dynamodb-table": dynamodbTable, "--s3-bucket": s3Bucket,
            "--sns-topic-arn": snsTopicArn, "--s3-presign-expiry": s3PresignExpiry.map { "\($0)" },
            "--aws-timeout-seconds": awsTimeoutSeconds.map { "\($0)" },
        ]
    }
}

struct LimitOptions: ParsableArguments, SettingFlags {
    @Option(help: "Open connections in all; more are closed as they are accepted (env GATEWAY_MAX_CONNECTIONS; default 10000).")
    var maxConnections: Int?

    @Option(help: "Open connections from one IP address (env GATEWAY_MAX_CONNECTIONS_PER_ADDRESS; default 1000).")
    var maxConnectionsPerAddress: Int?

    @Option(help: "Concurrent streams per connection, advertised in SETTINGS (env GATEWAY_MAX_CONCURRENT_STREAMS; default 1000).")
    var maxConcurrentStreams: Int?

    @Option(help: "Largest request message, after decompression too; larger: RESOURCE_EXHAUSTED (env GATEWAY_MAX_RECEIVE_MESSAGE_BYTES; default 4194304).")
    var maxReceiveMessageBytes: Int?

    @Option(help: "Request bytes a connection may hold beyond its flow-control window (large messages arriving, messages not yet read); beyond it large messages wait, then are RESOURCE_EXHAUSTED (env GATEWAY_MAX_CONNECTION_BUFFER_BYTES; default 33554432).")
    var maxConnectionBufferBytes: Int?

    @Option(help: "Response bytes a connection may queue across its streams while its client does not read them; beyond it each stream queues one message at a time (env GATEWAY_MAX_CONNECTION_SEND_BUFFER_BYTES; default 33554432).")
    var maxConnectionSendBufferBytes: Int?

    @Option(help: "Largest request header list (env GATEWAY_MAX_HEADER_LIST_BYTES; default 16384).")
    var maxHeaderListBytes: Int?

    @Option(help: "Seconds a new connection has to send its HTTP/2 preface (env GATEWAY_HANDSHAKE_TIMEOUT_SECONDS; default 10).")
    var handshakeTimeoutSeconds: Int?

    @Option(help: "Seconds without an open stream before a connection gets GOAWAY; 0: never (env GATEWAY_MAX_CONNECTION_IDLE_SECONDS; default 3600).")
    var maxConnectionIdleSeconds: Int?

    @Option(help: "Seconds (±10%) before a connection gets GOAWAY whatever it does; 0: never (env GATEWAY_MAX_CONNECTION_AGE_SECONDS; default 0).")
    var maxConnectionAgeSeconds: Int?

    @Option(help: "Seconds an aged connection's calls get to finish (env GATEWAY_MAX_CONNECTION_AGE_GRACE_SECONDS; default 30).")
    var maxConnectionAgeGraceSeconds: Int?

    @Option(help: "Seconds a call may last, whatever deadline it has; then DEADLINE_EXCEEDED; 0: no limit (env GATEWAY_MAX_CALL_SECONDS; default 86400).")
    var maxCallSeconds: Int?

    @Option(help: "Seconds a subscriber may leave an event unread before its Subscribe ends with RESOURCE_EXHAUSTED (env GATEWAY_SUBSCRIBER_STALL_SECONDS; default 60).")
    var subscriberStallSeconds: Int?

    @Option(help: "Seconds of silence from a client before the gateway PINGs it (env GATEWAY_KEEPALIVE_TIME_SECONDS; default 7200).")
    var keepaliveTimeSeconds: Int?

    @Option(help: "Seconds to wait for the answer to that PING before closing (env GATEWAY_KEEPALIVE_TIMEOUT_SECONDS; default 20).")
    var keepaliveTimeoutSeconds: Int?

    @Option(help: "Largest file UploadFile accepts, in bytes (env GATEWAY_MAX_UPLOAD_BYTES; default 4294967296).")
    var maxUploadBytes: Int64?

    @Option(help: "Read calls (Get, List, Count, Download, Subscribe) per second per user; 0: no limit (env GATEWAY_READS_PER_SECOND; default 1000). Admins are not limited.")
    var readsPerSecond: Int?

    @Option(help: "Read calls a user may make at once above that rate (env GATEWAY_READ_BURST; default 2000).")
    var readBurst: Int?

    @Option(help: "Other calls per second per user; 0: no limit (env GATEWAY_WRITES_PER_SECOND; default 500).")
    var writesPerSecond: Int?

    @Option(help: "Other calls a user may make at once above that rate (env GATEWAY_WRITE_BURST; default 1000).")
    var writeBurst: Int?

    var flagValues: [String: String?] {
        [
            "--max-connections": maxConnections.map { "\($0)" },
            "--max-connections-per-address": maxConnectionsPerAddress.map { "\($0)" },
            "--max-concurrent-streams": maxConcurrentStreams.map { "\($0)" },
            "--max-receive-message-bytes": maxReceiveMessageBytes.map { "\($0)" },
            "--max-connection-buffer-bytes": maxConnectionBufferBytes.map { "\($0)" },
            "--max-connection-send-buffer-bytes": maxConnectionSendBufferBytes.map { "\($0)" },
            "--max-header-list-bytes": maxHeaderListBytes.map { "\($0)" },
            "--handshake-timeout-seconds": handshakeTimeoutSeconds.map { "\($0)" },
            "--max-connection-idle-seconds": maxConnectionIdleSeconds.map { "\($0)" },
            "--max-connection-age-seconds": maxConnectionAgeSeconds.map { "\($0)" },
            "--max-connection-age-grace-seconds": maxConnectionAgeGraceSeconds.map { "\($0)" },
            "--max-call-seconds": maxCallSeconds.map { "\($0)" },
            "--subscriber-stall-seconds": subscriberStallSeconds.map { "\($0)" },
            "--keepalive-time-seconds": keepaliveTimeSeconds.map { "\($0)" },
            "--keepalive-timeout-seconds": keepaliveTimeoutSeconds.map { "\($0)" },
            "--max-upload-bytes": maxUploadBytes.map { "\($0)" },
            "--reads-per-second": readsPerSecond.map { "\($0)" },
            "--read-burst": readBurst.map { "\($0)" },
            "--writes-per-second": writesPerSecond.map { "\($0)" },
            "--write-burst": writeBurst.map { "\($0)" },
        ]
    }
}

struct TLSOptions: ParsableArguments, SettingFlags {
    @Option(help: "PEM certificate chain (leaf first) for TLS with ALPN h2; re-read on SIGHUP (env GATEWAY_TLS_CERT; default: h2c).")
    var tlsCert: String?

    @Option(help: "PEM private key of the certificate, RSA or ECDSA (env GATEWAY_TLS_KEY).")
    var tlsKey: String?

    @Option(help: "Passphrase of an encrypted --tls-key; prefer the environment (env GATEWAY_TLS_KEY_PASSPHRASE).")
    var tlsKeyPassphrase: String?

    @Option(help: "PEM roots that client certificates must chain to: mutual TLS (env GATEWAY_TLS_CLIENT_CA).")
    var tlsClientCa: String?

    @Option(help: "With --tls-client-ca: required (default) or optional, which admits clients without a certificate (env GATEWAY_TLS_CLIENT_AUTH).")
    var tlsClientAuth: String?

    @Option(help: "TLS 1.2 cipher list in OpenSSL's syntax (env GATEWAY_TLS_CIPHERS; default ECDHE with AES-GCM or ChaCha20-Poly1305).")
    var tlsCiphers: String?

    @Option(help: "Oldest TLS version accepted: 1.2 (default) or 1.3 (env GATEWAY_TLS_MIN_VERSION).")
    var tlsMinVersion: String?

    @Flag(help: "Serve h2c on an address other than loopback, e.g. behind a proxy that terminates TLS (env GATEWAY_INSECURE_PLAINTEXT=1).")
    var insecurePlaintext = false

    var flagValues: [String: String?] {
        [
            "--tls-cert": tlsCert, "--tls-key": tlsKey, "--tls-key-passphrase": tlsKeyPassphrase,
            "--tls-client-ca": tlsClientCa, "--tls-client-auth": tlsClientAuth, "--tls-ciphers": tlsCiphers,
            "--tls-min-version": tlsMinVersion, "--insecure-plaintext": insecurePlaintext ? "true" : nil,
        ]
    }
}
