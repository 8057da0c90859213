import GatewayApplication
import OpenSSLCrypto
import ProtoRuntime
import Synchronization

/// A Google service account key file (the JSON downloaded from the console). Only what the OAuth JWT-bearer
/// flow needs is kept; the private key is never printed.
public struct ServiceAccount: Sendable, CustomStringConvertible {
    public let clientEmail: String
    public let privateKeyID: String?
    public let tokenURI: String
    public let projectID: String?
    let privateKey: RSAPrivateKey

    public init(json: [UInt8]) throws {
        guard case .object(let document) = try JSONParser.parse(json, maxDepth: 4) else {
            throw ServiceAccountError("a service account file must be a JSON object")
        }
        guard document.string("type") == "service_account" else {
            throw ServiceAccountError("not a service account key file (\"type\" is not \"service_account\")")
        }
        guard let email = document.string("client_email"), let pem = document.string("private_key") else {
            throw ServiceAccountError("the service account file lacks \"client_email\" or \"private_key\"")
        }
        clientEmail = email
        privateKeyID = document.string("private_key_id")
        tokenURI = document.string("token_uri") ?? "https://oauth2.googleapis.com/token"
        projectID = document.string("project_id")
        do {
            privateKey = try RSAPrivateKey(pem: Array(pem.utf8))
        } catch {
            throw ServiceAccountError("the service account's \"private_key\" is not an RSA private key")
        }
    }

    public var description: String { "service account \(clientEmail)" }
}

public struct ServiceAccountError: Error, Sendable, CustomStringConvertible {
    public var description: String

    init(_ description: String) {
        self.description = description
    }
}

/// OAuth 2.0 access tokens for a service account by the JWT-bearer grant (RFC 7523): an assertion signed with
/// the account's key (RS256, OpenSSL) is exchanged at its `token_uri`. Tokens are cached until a minute before
/// they expire; concurrent callers share one exchange.
final class GoogleAccessTokens: Sendable {
    static let scopes = "https://www.googleapis.com/auth/cloud-platform https://www.googleapis.com/auth/identitytoolkit"

    private struct Token {
        var value: String
        var expiresAt: Int64
    }

    private struct State {
        var current: Token?
        var exchange: Task<Token, any Error>?
    }

    private let account: ServiceAccount
    private let http: any HTTPClient
    private let clock: any WallClock
    private let state = Mutex(State())

    init(account: ServiceAccount, http: any HTTPClient, clock: any WallClock) {
        self.account = account
        self.http = http
        self.clock = clock
    }

    func token() async throws -> String {
        let now = clock.now().seconds
        let task: Task<Token, any Error> = state.withLock { s in
            if let current = s.current, now < current.expiresAt - 60 {
                return Task { current }
            }
            if let running = s.exchange { return running }
            let task = Task { [self] in
                defer { state.withLock { $0.exchange = nil } }
                let token = try await exchange(now: now)
                state.withLock { $0.current = token }
                return token
            }
            s.exchange = task
            return task
        }
        return try await task.value.value
    }

    private func exchange(now: Int64) async throws -> Token {
        let assertion = try self.assertion(now: now)
        let body = "grant_type=urn%3Aietf%3Aparams%3Aoauth%3Agrant-type%3Ajwt-bearer&assertion=\(assertion)"
        let response = try await http.send(HTTPRequest(
            method: "POST", url: account.tokenURI,
            headers: [("Content-Type", "application/x-www-form-urlencoded")], body: Array(body.utf8)
        ))
        guard response.status == 200 else {
            throw HTTPClientError(url: account.tokenURI, reason: "token exchange answered status \(response.status)")
        }
        guard case .object(let reply) = try JSONParser.parse(response.body, maxDepth: 4),
              let value = reply.string("access_token"), !value.isEmpty else {
            throw HTTPClientError(url: account.tokenURI, reason: "token exchange reply has no access_token")
        }
        let lifetime = reply.seconds("expires_in") ?? 3600
        return Token(value: value, expiresAt: now + min(max(lifetime, 60), 3600))
    }

    /// The signed JWT the token endpoint exchanges: issued by the account, for the endpoint, one hour.
    func assertion(now: Int64) throws -> String {
        var header = JSONWriter()
        header.beginObject()
        header.key("alg"); header.string("RS256")
        header.key("typ"); header.string("JWT")
        if let kid = account.privateKeyID { header.key("kid"); header.string(kid) }
        header.endObject()
        var claims = JSONWriter()
        claims.beginObject()
        claims.key("iss"); claims.string(account.clientEmail)
        claims.key("scope"); claims.string(Self.scopes)
        claims.key("aud"); claims.string(account.tokenURI)
        claims.key("iat"); claims.rawNumber(String(now))
        claims.key("exp"); claims.rawNumber(String(now + 3600))
        claims.endObject()
        let signingInput = Base64.encodeURLSafeUnpadded(header.bytes) + "." + Base64.encodeURLSafeUnpadded(claims.bytes)
        let signature = try Array(signingInput.utf8).withUnsafeBytes { try account.privateKey.signSHA256($0) }
        return signingInput + "." + Base64.encodeURLSafeUnpadded(signature)
    }
}
