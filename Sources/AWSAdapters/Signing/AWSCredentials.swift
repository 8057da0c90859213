import GatewayApplication

/// An access key, and for temporary credentials their session token and expiry. `description` never shows
/// the secret or the token.
public struct AWSCredentials: Sendable, Hashable, CustomStringConvertible {
    public var accessKeyID: String
    public var secretAccessKey: String
    public var sessionToken: String?
    /// When temporary credentials stop working; nil for long-term keys.
    public var expiration: UnixTime?
    /// Which provider produced them (`environment`, `profile default`, `web identity` …), for messages.
    public var source: String

    public init(accessKeyID: String, secretAccessKey: String, sessionToken: String? = nil, expiration: UnixTime? = nil, source: String) {
        self.accessKeyID = accessKeyID
        self.secretAccessKey = secretAccessKey
        self.sessionToken = sessionToken
        self.expiration = expiration
        self.source = source
    }

    public var description: String {
        "\(source) credentials for access key \(accessKeyID)" + (expiration.map { " (expire at \($0.seconds))" } ?? "")
    }
}

/// Where credentials come from. `credentials()` is called before every request; providers cache.
public protocol AWSCredentialProvider: Sendable {
    func credentials() async throws -> AWSCredentials
}

/// Credentials that cannot be had: the message says what was tried and what would fix it, never a secret.
public struct AWSCredentialsError: Error, Sendable, CustomStringConvertible {
    public var message: String

    public init(_ message: String) {
        self.message = message
    }

    public var description: String { message }
}

/// Fixed credentials (tests, and the environment provider's result).
public struct StaticCredentialProvider: AWSCredentialProvider {
    public let value: AWSCredentials

    public init(_ value: AWSCredentials) {
        self.value = value
    }

    public func credentials() async throws -> AWSCredentials { value }
}
