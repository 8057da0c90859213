import Logging

/// One configurable value of ``GatewaySettings``: its key in the configuration file, the flag (and so the
/// environment variable) that sets it, how its text or JSON is read, and how it is shown at start.
public struct Setting: Sendable {
    /// The key in the JSON file, dotted for nested objects: `auth.leeway_seconds` is
    /// `{"auth": {"leeway_seconds": …}}`.
    public let key: String
    /// The command-line flag, e.g. `--auth-leeway-seconds`.
    public let flag: String
    /// Shown as `***` at start. Keys that look secret (`secret`, `password`, `token` …) are masked as well.
    public let isSecret: Bool
    let kind: Kind
    let assign: @Sendable (inout GatewaySettings, Value) -> Void
    let current: @Sendable (GatewaySettings) -> String?

    /// The environment variable: `GATEWAY_` and the flag's name in upper snake case (`GATEWAY_AUTH_LEEWAY_SECONDS`).
    public var environmentVariable: String {
        "GATEWAY_" + flag.drop { $0 == "-" }.uppercased().replacingOccurrences(of: "-", with: "_")
    }

    /// Whether the value is masked when shown.
    public var isMasked: Bool {
        isSecret || ["secret", "password", "passwd", "token", "credential", "private_key", "api_key"].contains { key.contains($0) }
    }

    /// How a value is written down, for parsing and for messages.
    enum Kind: Sendable {
        case string
        case integer(ClosedRange<Int>)
        case boolean
        case list
        case choice([String])

        var expected: String {
            switch self {
            case .string: "a string"
            case .integer: "an integer"
            case .boolean: "true or false"
            case .list: "a list of strings"
            case .choice(let choices): "one of " + choices.joined(separator: ", ")
            }
        }
    }

    /// A parsed value, already of the setting's kind.
    enum Value: Sendable {
        case string(String)
        case integer(Int)
        case boolean(Bool)
        case list([String])

        var string: String {
            if case .string(let value) = self { return value }
            preconditionFailure("a setting's value is not of its kind")
        }

        var integer: Int {
            if case .integer(let value) = self { return value }
            preconditionFailure("a setting's value is not of its kind")
        }
    }

    init(
        key: String, flag: String, kind: Kind, isSecret: Bool,
        assign: @escaping @Sendable (inout GatewaySettings, Value) -> Void,
        current: @escaping @Sendable (GatewaySettings) -> String?
    ) {
        self.key = key
        self.flag = flag
        self.kind = kind
        self.isSecret = isSecret
        self.assign = assign
        self.current = current
    }
}

// MARK: - Kinds of setting

extension Setting {
    public static func string(
        _ key: String, flag: String, _ path: WritableKeyPath<GatewaySettings, String> & Sendable, secret: Bool = false
    ) -> Setting {
        Setting(key: key, flag: flag, kind: .string, isSecret: secret, assign: { $0[keyPath: path] = $1.string }, current: { $0[keyPath: path] })
    }

    /// A string that may be absent (nil when no source sets it).
    public static func optionalString(
        _ key: String, flag: String, _ path: WritableKeyPath<GatewaySettings, String?> & Sendable, secret: Bool = false
    ) -> Setting {
        Setting(key: key, flag: flag, kind: .string, isSecret: secret, assign: { $0[keyPath: path] = $1.string }, current: { $0[keyPath: path] })
    }

    public static func integer<I: FixedWidthInteger & Sendable>(
        _ key: String, flag: String, _ path: WritableKeyPath<GatewaySettings, I> & Sendable, in range: ClosedRange<Int>
    ) -> Setting {
        Setting(
            key: key, flag: flag, kind: .integer(range), isSecret: false,
            assign: { $0[keyPath: path] = I($1.integer) }, current: { "\($0[keyPath: path])" }
        )
    }

    public static func optionalInteger<I: FixedWidthInteger & Sendable>(
        _ key: String, flag: String, _ path: WritableKeyPath<GatewaySettings, I?> & Sendable, in range: ClosedRange<Int>
    ) -> Setting {
        Setting(
            key: key, flag: flag, kind: .integer(range), isSecret: false,
            assign: { $0[keyPath: path] = I($1.integer) }, current: { $0[keyPath: path].map { "\($0)" } }
        )
    }

    /// On or off: `true`/`false` in the file, `1`/`0`, `true`/`false` or `yes`/`no` in the environment; a flag
    /// without a value turns it on.
    public static func boolean(_ key: String, flag: String, _ path: WritableKeyPath<GatewaySettings, Bool> & Sendable) -> Setting {
        Setting(
            key: key, flag: flag, kind: .boolean, isSecret: false,
            assign: { settings, value in if case .boolean(let on) = value { settings[keyPath: path] = on } },
            current: { "\($0[keyPath: path])" }
        )
    }

    /// Strings: a JSON array (or one comma-separated string) in the file, comma-separated elsewhere.
    public static func list(_ key: String, flag: String, _ path: WritableKeyPath<GatewaySettings, Set<String>?> & Sendable) -> Setting {
        Setting(
            key: key, flag: flag, kind: .list, isSecret: false,
            assign: { settings, value in if case .list(let items) = value { settings[keyPath: path] = Set(items) } },
            current: { $0[keyPath: path].map { $0.sorted().joined(separator: ",") } }
        )
    }

    /// One of an enumeration's raw values.
    public static func choice<T: RawRepresentable & CaseIterable & Sendable>(
        _ key: String, flag: String, _ path: WritableKeyPath<GatewaySettings, T> & Sendable
    ) -> Setting where T.RawValue == String {
        Setting(
            key: key, flag: flag, kind: .choice(T.allCases.map(\.rawValue)), isSecret: false,
            assign: { settings, value in if let choice = T(rawValue: value.string) { settings[keyPath: path] = choice } },
            current: { $0[keyPath: path].rawValue }
        )
    }
}

// MARK: - The gateway's settings

extension Setting {
    /// Every setting of the gateway, in the order they are shown at start. The one table of keys, flags and
    /// environment variables.
    public static let gateway: [Setting] = [
        .string("host", flag: "--host", \.host),
        .integer("port", flag: "--port", \.port, in: 0...65535),
        .string("data_dir", flag: "--data-dir", \.dataDirectory),
        .choice("backend", flag: "--backend", \.backend),
        .optionalString("tls.cert_file", flag: "--tls-cert", \.tls.certificateFile),
        .optionalString("tls.key_file", flag: "--tls-key", \.tls.keyFile),
        .optionalString("tls.key_passphrase", flag: "--tls-key-passphrase", \.tls.keyPassphrase, secret: true),
        .optionalString("tls.client_ca", flag: "--tls-client-ca", \.tls.clientCAFile),
        .choice("tls.client_auth", flag: "--tls-client-auth", \.tls.clientAuthentication),
        .string("tls.ciphers", flag: "--tls-ciphers", \.tls.ciphers),
        .choice("tls.min_version", flag: "--tls-min-version", \.tls.minimumVersion),
        .boolean("insecure_plaintext", flag: "--insecure-plaintext", \.insecurePlaintext),
        .string("aws.region", flag: "--aws-region", \.aws.region),
        .optionalString("aws.endpoint_url", flag: "--aws-endpoint-url", \.aws.endpointURL),
        .optionalString("aws.dynamodb_endpoint_url", flag: "--dynamodb-endpoint-url", \.aws.dynamoDBEndpointURL),
        .optionalString("aws.s3_endpoint_url", flag: "--s3-endpoint-url", \.aws.s3EndpointURL),
        .optionalString("aws.sns_endpoint_url", flag: "--sns-endpoint-url", \.aws.snsEndpointURL),
        .optionalString("aws.sts_endpoint_url", flag: "--sts-endpoint-url", \.aws.stsEndpointURL),
        .string("aws.dynamodb_table", flag: "--dynamodb-table", \.aws.table),
        .optionalString("aws.s3_bucket", flag: "--s3-bucket", \.aws.bucket),
        .optionalString("aws.sns_topic_arn", flag: "--sns-topic-arn", \.aws.topicARN),
        .integer("aws.s3_presign_expiry", flag: "--s3-presign-expiry", \.s3PresignExpirySeconds, in: 1...604_800),
        .integer("aws.timeout_seconds", flag: "--aws-timeout-seconds", \.aws.timeoutSeconds, in: 1...300),
        .choice("log.level", flag: "--log-level", \.log.level),
        .choice("log.format", flag: "--log-format", \.log.format),
        .optionalInteger("metrics_port", flag: "--metrics-port", \.metrics.port, in: 0...65535),
        .string("metrics_host", flag: "--metrics-host", \.metrics.host),
        .optionalString("auth.firebase_project_id", flag: "--firebase-project-id", \.auth.projectID),
        .string("auth.firebase_cert_url", flag: "--firebase-cert-url", \.auth.idTokenKeysURL),
        .string("auth.firebase_session_cert_url", flag: "--firebase-session-cert-url", \.auth.sessionCookieKeysURL),
        .integer("auth.leeway_seconds", flag: "--auth-leeway-seconds", \.auth.leewaySeconds, in: 0...300),
        .list("auth.firebase_tenants", flag: "--firebase-tenants", \.auth.tenants),
        .list("auth.mtls_services", flag: "--mtls-services", \.auth.certificateServices),
        .boolean("auth.firebase_check_revoked", flag: "--firebase-check-revoked", \.auth.checkRevoked),
        .optionalString("auth.firebase_service_account", flag: "--firebase-service-account", \.auth.serviceAccountFile),
        .string("auth.identity_toolkit_url", flag: "--identity-toolkit-url", \.auth.identityToolkitURL),
        .integer("limits.max_connections", flag: "--max-connections", \.limits.maxConnections, in: 1...1_000_000),
        .integer("limits.max_connections_per_address", flag: "--max-connections-per-address", \.limits.maxConnectionsPerAddress, in: 1...1_000_000),
        .integer("limits.max_concurrent_streams", flag: "--max-concurrent-streams", \.limits.maxConcurrentStreams, in: 1...100_000),
        .integer("limits.max_receive_message_bytes", flag: "--max-receive-message-bytes", \.limits.maxReceiveMessageBytes, in: 1024...(64 << 20)),
        .integer("limits.max_connection_buffer_bytes", flag: "--max-connection-buffer-bytes", \.limits.maxConnectionBufferBytes, in: (1 << 20)...(4 << 30)),
        .integer("limits.max_connection_send_buffer_bytes", flag: "--max-connection-send-buffer-bytes", \.limits.maxConnectionSendBufferBytes, in: (1 << 20)...(4 << 30)),
        .integer("limits.max_header_list_bytes", flag: "--max-header-list-bytes", \.limits.maxHeaderListBytes, in: 1024...(1 << 20)),
        .integer("limits.handshake_timeout_seconds", flag: "--handshake-timeout-seconds", \.limits.handshakeTimeoutSeconds, in: 1...300),
        .integer("limits.max_connection_idle_seconds", flag: "--max-connection-idle-seconds", \.limits.maxConnectionIdleSeconds, in: 0...31_536_000),
        .integer("limits.max_connection_age_seconds", flag: "--max-connection-age-seconds", \.limits.maxConnectionAgeSeconds, in: 0...31_536_000),
        .integer("limits.max_connection_age_grace_seconds", flag: "--max-connection-age-grace-seconds", \.limits.maxConnectionAgeGraceSeconds, in: 0...86_400),
        .integer("limits.max_call_seconds", flag: "--max-call-seconds", \.limits.maxCallSeconds, in: 0...31_536_000),
        .integer("limits.subscriber_stall_seconds", flag: "--subscriber-stall-seconds", \.limits.subscriberStallSeconds, in: 1...86_400),
        .integer("limits.keepalive_time_seconds", flag: "--keepalive-time-seconds", \.limits.keepaliveTimeSeconds, in: 10...31_536_000),
        .integer("limits.keepalive_timeout_seconds", flag: "--keepalive-timeout-seconds", \.limits.keepaliveTimeoutSeconds, in: 1...3_600),
        .integer("limits.max_upload_bytes", flag: "--max-upload-bytes", \.limits.maxUploadBytes, in: 0...Int.max),
        .integer("limits.reads_per_second", flag: "--reads-per-second", \.limits.readsPerSecond, in: 0...1_000_000),
        .integer("limits.read_burst", flag: "--read-burst", \.limits.readBurst, in: 1...1_000_000),
        .integer("limits.writes_per_second", flag: "--writes-per-second", \.limits.writesPerSecond, in: 0...1_000_000),
        .integer("limits.write_burst", flag: "--write-burst", \.limits.writeBurst, in: 1...1_000_000),
    ]
}
