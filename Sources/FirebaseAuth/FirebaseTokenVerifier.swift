import GatewayApplication
import OpenSSLCrypto
import ProtoRuntime

/// Verifies Firebase ID tokens and session cookies without a Firebase SDK (Firebase's "Verify ID tokens
/// using a third-party JWT library"): strict structure, `alg` exactly RS256 (never chosen from the header),
/// claims and times, then RS256 with the key named by `kid` from a fixed key source. Cheap checks first, the
/// signature last (as firebase-admin-go).
public struct FirebaseTokenVerifier: TokenVerifier {
    public struct Configuration: Sendable {
        public var projectID: String
        /// Clock skew tolerated on `iat`, `exp` and `auth_time`; clamped to 0...300 s.
        public var leewaySeconds: Int64 = 60
        /// When set, only tokens of these tenants (`firebase.tenant`) are accepted; nil accepts any tenant
        /// and tokens without one.
        public var allowedTenants: Set<String>?

        public init(projectID: String) {
            self.projectID = projectID
        }
    }

    public static let googleIDTokenKeysURL =
        "https://www.googleapis.com/robot/v1/metadata/x509/securetoken@system.gserviceaccount.com"
    public static let googleSessionCookieKeysURL =
        "https://www.googleapis.com/identitytoolkit/v3/relyingparty/publicKeys"
    static let customTokenAudience =
        "https://identitytoolkit.googleapis.com/google.identity.identitytoolkit.v1.IdentityToolkit"

    private let configuration: Configuration
    private let idTokenKeys: any SigningKeySource
    private let sessionCookieKeys: any SigningKeySource
    private let clock: any WallClock
    private let cache: VerificationCache?

    public init(
        configuration: Configuration,
        idTokenKeys: any SigningKeySource,
        sessionCookieKeys: any SigningKeySource,
        clock: any WallClock,
        cacheCapacity: Int = 10_000
    ) {
        var configuration = configuration
        configuration.leewaySeconds = min(max(configuration.leewaySeconds, 0), 300)
        self.configuration = configuration
        self.idTokenKeys = idTokenKeys
        self.sessionCookieKeys = sessionCookieKeys
        self.clock = clock
        cache = cacheCapacity > 0 ? VerificationCache(capacity: cacheCapacity) : nil
    }

    public func verify(_ token: String, kind: TokenKind) async throws(TokenVerificationError) -> Principal {
        let now = clock.now().seconds
        let cacheKey = cache.map { _ in VerificationCache.key(token: token, kind: kind) }
        if let cache, let cacheKey, let principal = cache.principal(for: cacheKey, now: now, leeway: configuration.leewaySeconds) {
            return principal
        }
        let jwt: CompactJWT
        do {
            jwt = try CompactJWT(token)
        } catch {
            throw Self.malformed(error, kind)
        }
        let principal = try checkClaims(jwt, kind: kind, now: now)
        let keys = kind == .idToken ? idTokenKeys : sessionCookieKeys
        let key = try await keys.key(id: jwt.header.string("kid") ?? "")
        let valid = jwt.signature.withUnsafeBytes { signature in
            jwt.signingInput.withUnsafeBytes { key.verifySHA256(signature: signature, message: $0) }
        }
        guard valid else { throw TokenVerificationError(.invalidSignature, "\(kind) signature is invalid") }
        if let cache, let cacheKey { cache.store(principal, for: cacheKey, now: now) }
        return principal
    }

    /// Header, claims and times: everything but the signature.
    func checkClaims(_ jwt: CompactJWT, kind: TokenKind, now: Int64) throws(TokenVerificationError) -> Principal {
        let header = jwt.header
        let claims = jwt.payload
        let project = configuration.projectID
        if claims.string("aud") == Self.customTokenAudience {
            throw TokenVerificationError(.customToken, "a Firebase custom token was sent; exchange it for an ID token first")
        }
        guard let algorithm = header.string("alg") else {
            throw TokenVerificationError(.unsupportedAlgorithm, "\(kind) has no \"alg\"; expected \"RS256\"")
        }
        guard algorithm == "RS256" else {
            throw TokenVerificationError(.unsupportedAlgorithm, "\(kind) has unsupported algorithm \(Self.quoted(algorithm)); expected \"RS256\"")
        }
        // Keys come only from the configured URL: a token that offers its own key (or where to get one) is
        // refused outright rather than silently ignored.
        if let offered = Self.keyCarryingHeaders.first(where: { header[$0] != nil }) {
            throw TokenVerificationError(.embeddedKey, "\(kind) header must not carry \"\(offered)\"; keys come only from the configured key URL")
        }
        guard let kid = header.string("kid"), !kid.isEmpty, kid.utf8.count <= 128 else {
            throw TokenVerificationError(.malformed, "\(kind) has no usable \"kid\" header")
        }
        guard let audience = claims.string("aud"), audience == project else {
            throw TokenVerificationError(.wrongAudience, "\(kind) was issued for a different Firebase project")
        }
        let issuer = (kind == .idToken ? "https://securetoken.google.com/" : "https://session.firebase.google.com/") + project
        guard claims.string("iss") == issuer else {
            throw TokenVerificationError(.wrongIssuer, "\(kind) has an unexpected issuer; expected \(issuer)")
        }
        guard let subject = claims.string("sub"), !subject.isEmpty, subject.unicodeScalars.count <= 128 else {
            throw TokenVerificationError(.invalidSubject, "\(kind) has no valid \"sub\" (1 to 128 characters)")
        }
        guard let issuedAt = claims.seconds("iat"), let expiresAt = claims.seconds("exp") else {
            throw TokenVerificationError(.missingClaim, "\(kind) lacks \"iat\" or \"exp\"")
        }
        let leeway = configuration.leewaySeconds
        guard expiresAt + leeway >= now else {
            throw TokenVerificationError(.expired, "\(kind) expired at \(Self.date(expiresAt)); get a fresh token from the client SDK")
        }
        guard issuedAt <= now + leeway else {
            throw TokenVerificationError(.notYetValid, "\(kind) is not valid yet (issued at \(Self.date(issuedAt))); check the client clock")
        }
        let authTime = claims.seconds("auth_time")
        if let authTime, authTime > now + leeway {
            throw TokenVerificationError(.notYetValid, "\(kind) has a sign-in time in the future; check the client clock")
        }
        let firebase = claims.object("firebase")
        let tenant = firebase?.string("tenant")
        if let allowed = configuration.allowedTenants, !(tenant.map(allowed.contains) ?? false) {
            throw TokenVerificationError(.tenantNotAllowed, "\(kind) tenant \(Self.quoted(tenant ?? "none")) is not accepted by this service")
        }
        var custom: [String: ClaimValue] = [:]
        for (name, value) in claims.entries where !Self.isStandardClaim(name) {
            custom[name] = ClaimValue(value)
        }
        return Principal(
            uid: subject, email: claims.string("email"), emailVerified: claims.bool("email_verified") ?? false,
            signInProvider: firebase?.string("sign_in_provider"), tenant: tenant,
            isAdmin: claims.bool("admin") == true, customClaims: custom, authTime: authTime, issuedAt: issuedAt, expiresAt: expiresAt,
            kind: kind
        )
    }

    static let keyCarryingHeaders = ["jwk", "jku", "x5u", "x5c"]

    /// The claims Firebase sets itself; the rest are custom claims. (A switch: cheaper than hashing into a set
    /// for every claim of every token.)
    static func isStandardClaim(_ name: String) -> Bool {
        switch name {
        case "iss", "aud", "auth_time", "user_id", "sub", "iat", "exp", "email", "email_verified", "phone_number",
             "name", "picture", "firebase":
            true
        default:
            false
        }
    }

    private static func malformed(_ error: TokenFormatError, _ kind: TokenKind) -> TokenVerificationError {
        switch error {
        case .tooLarge: TokenVerificationError(.malformed, "\(kind) is larger than \(CompactJWT.maximumSize) bytes")
        case .segments, .encoding: TokenVerificationError(.malformed, "\(kind) is malformed: expected three base64url segments")
        case .json: TokenVerificationError(.malformed, "\(kind) is malformed: its header and payload must be JSON objects")
        }
    }

    /// Attacker-controlled text, escaped and cut short before it appears in a message.
    static func quoted(_ text: String) -> String {
        let safe = text.unicodeScalars.prefix(40).map { $0.isASCII && $0.value >= 0x20 && $0 != "\"" ? String($0) : "?" }.joined()
        return "\"\(safe)\(text.unicodeScalars.count > 40 ? "…" : "")\""
    }

    static func date(_ seconds: Int64) -> String {
        (try? ProtoJSONTime.formatTimestamp(seconds: seconds, nanos: 0)) ?? "\(seconds)"
    }
}

extension ClaimValue {
    init(_ json: JSONValue) {
        switch json {
        case .null: self = .null
        case .bool(let b): self = .bool(b)
        case .number(let text): self = .number(Double(text) ?? .nan)
        case .string(let s): self = .string(s)
        case .array(let a): self = .array(a.map(ClaimValue.init))
        case .object(let o): self = .object(Dictionary(o.entries.map { ($0.key, ClaimValue($0.value)) }, uniquingKeysWith: { a, _ in a }))
        }
    }
}
