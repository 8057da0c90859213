import FirebaseAuth
import Foundation
import GatewayApplication

/// How the gateway verifies callers: a Firebase project, or local mode when none is configured.
public struct AuthSettings: Sendable, Equatable {
    /// The Firebase project whose tokens are accepted; nil means local mode.
    public var projectID: String?
    public var idTokenKeysURL = FirebaseTokenVerifier.googleIDTokenKeysURL
    public var sessionCookieKeysURL = FirebaseTokenVerifier.googleSessionCookieKeysURL
    public var leewaySeconds: Int64 = 60
    /// Accepted `firebase.tenant` values; nil accepts tokens of any tenant and without one.
    public var tenants: Set<String>?
    /// Ask Identity Toolkit whether each token's user is disabled or revoked its tokens (needs a project and a
    /// service account; off by default).
    public var checkRevoked = false
    /// The service account key file for the revocation check.
    public var serviceAccountFile: String?
    public var identityToolkitURL = "https://identitytoolkit.googleapis.com"
    /// Backend services admitted without a token by their TLS client certificate (mutual TLS): a subject
    /// alternative name (`spiffe://…`, a DNS name, `URI:…`/`DNS:…` forms too) or the RFC 2253 subject.
    public var certificateServices: Set<String>?

    public init() {}

    public var isLocalMode: Bool { projectID == nil }
}

/// The verifier and what it needs kept alive, built from ``AuthSettings``.
public struct Authentication: Sendable {
    public let verifier: any TokenVerifier
    /// In local mode, the authority whose key is the only one trusted.
    public let localAuthority: LocalAuthority?
    private let keySources: [any SigningKeySource]

    /// With a project id: keys from the configured URLs over `http`. Without: local mode, whose key and
    /// certificate live in `dataDirectory` (created the first time). The local key is never trusted when a
    /// project id is set.
    public init(settings: AuthSettings, dataDirectory: URL, http: any HTTPClient, clock: any WallClock) throws {
        let idTokenKeys: any SigningKeySource
        let sessionCookieKeys: any SigningKeySource
        var configuration: FirebaseTokenVerifier.Configuration
        if let projectID = settings.projectID {
            configuration = .init(projectID: projectID)
            idTokenKeys = HTTPSigningKeys(configuration: .init(url: settings.idTokenKeysURL), http: http, clock: clock)
            sessionCookieKeys = HTTPSigningKeys(configuration: .init(url: settings.sessionCookieKeysURL), http: http, clock: clock)
            localAuthority = nil
        } else {
            configuration = .init(projectID: LocalAuthority.projectID)
            let authority = try LocalAuthority.loadOrCreate(in: dataDirectory)
            idTokenKeys = try authority.signingKeys()
            sessionCookieKeys = idTokenKeys
            localAuthority = authority
        }
        configuration.leewaySeconds = settings.leewaySeconds
        configuration.allowedTenants = settings.tenants
        keySources = [idTokenKeys, sessionCookieKeys]
        let firebase = FirebaseTokenVerifier(
            configuration: configuration, idTokenKeys: idTokenKeys, sessionCookieKeys: sessionCookieKeys, clock: clock
        )
        if settings.checkRevoked {
            guard let projectID = settings.projectID else {
                throw AuthSettingsError("checking revocation needs a Firebase project id; local mode has no user directory")
            }
            guard let file = settings.serviceAccountFile else {
                throw AuthSettingsError("checking revocation needs a service account key file (--firebase-service-account)")
            }
            let account = try ServiceAccount(json: Array(try Data(contentsOf: URL(fileURLWithPath: file))))
            var revocation = RevocationCheckingVerifier.Configuration(projectID: projectID)
            revocation.identityToolkitURL = settings.identityToolkitURL
            verifier = RevocationCheckingVerifier(verifying: firebase, configuration: revocation, account: account, http: http, clock: clock)
        } else {
            verifier = firebase
        }
    }

    /// Downloads the signing keys before the first request needs them.
    public func prefetchKeys() async {
        await withTaskGroup(of: Void.self) { group in
            for source in keySources { group.addTask { await source.prefetch() } }
        }
    }
}

public struct AuthSettingsError: Error, CustomStringConvertible {
    public var description: String

    init(_ description: String) {
        self.description = description
    }
}
