/// Verifies a bearer token and says who sent it.
public protocol TokenVerifier: Sendable {
    func verify(_ token: String, kind: TokenKind) async throws(TokenVerificationError) -> Principal
}

/// The two kinds of Firebase credentials: they differ in issuer and signing keys.
public enum TokenKind: String, Sendable, Hashable, CustomStringConvertible {
    case idToken = "ID token"
    case sessionCookie = "session cookie"
    /// No token: a backend service admitted by its verified TLS client certificate (mutual TLS).
    case clientCertificate = "client certificate"

    public var description: String { rawValue }
}

/// Who is calling, as a verified token says.
public struct Principal: Sendable, Hashable {
    /// The Firebase uid (`sub`).
    public var uid: String
    public var email: String?
    public var emailVerified: Bool
    /// `firebase.sign_in_provider`, e.g. `password`, `google.com`, `custom`.
    public var signInProvider: String?
    /// `firebase.tenant`, for Identity Platform multi-tenancy.
    public var tenant: String?
    /// The `admin` custom claim is `true`.
    public var isAdmin: Bool
    /// Custom claims, the standard ones left out.
    public var customClaims: [String: ClaimValue]
    /// When the user signed in (`auth_time`), when the token was issued (`iat`) and when it stops being valid
    /// (`exp`), in Unix seconds.
    public var authTime: Int64?
    public var issuedAt: Int64?
    public var expiresAt: Int64
    public var kind: TokenKind

    public init(
        uid: String, email: String? = nil, emailVerified: Bool = false, signInProvider: String? = nil,
        tenant: String? = nil, isAdmin: Bool = false, customClaims: [String: ClaimValue] = [:],
        authTime: Int64? = nil, issuedAt: Int64? = nil, expiresAt: Int64, kind: TokenKind = .idToken
    ) {
        self.uid = uid
        self.email = email
        self.emailVerified = emailVerified
        self.signInProvider = signInProvider
        self.tenant = tenant
        self.isAdmin = isAdmin
        self.customClaims = customClaims
        self.authTime = authTime
        self.issuedAt = issuedAt
        self.expiresAt = expiresAt
        self.kind = kind
    }
}

/// A JSON value of a custom claim.
public indirect enum ClaimValue: Sendable, Hashable {
    case null
    case bool(Bool)
    case number(Double)
    case string(String)
    case array([ClaimValue])
    case object([String: ClaimValue])
}

/// Why a token was refused. `message` is safe to show the caller: it never contains the token.
public struct TokenVerificationError: Error, Sendable, Hashable, CustomStringConvertible {
    public enum Reason: String, Sendable, Hashable {
        case malformed
        case unsupportedAlgorithm
        /// The header offers a key or a key URL (`jwk`, `jku`, `x5u`, `x5c`).
        case embeddedKey
        case unknownKey
        case invalidSignature
        case expired
        case notYetValid
        case wrongAudience
        case wrongIssuer
        case customToken
        case invalidSubject
        case missingClaim
        case tenantNotAllowed
        case revoked
        case userDisabled
        /// The token's user no longer exists (revocation checking only).
        case userNotFound
        /// Revocation checking is on and the user directory cannot be asked right now: not the caller's fault.
        case revocationCheckUnavailable
        /// The signing keys cannot be had right now: not the caller's fault.
        case keysUnavailable
    }

    public var reason: Reason
    public var message: String

    public init(_ reason: Reason, _ message: String) {
        self.reason = reason
        self.message = message
    }

    public var description: String { message }
}
