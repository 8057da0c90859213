import CurlHTTP
import Foundation
import GatewayApplication
import ProtoRuntime
import Synchronization

/// A signed-in Firebase user: the ID token sent to the gateway, the refresh token that gets new ones, and
/// when the ID token expires. Saved by `gatewayctl login` (mode 0600), never printed.
public struct FirebaseCredentials: Sendable, Hashable, Codable {
    public var idToken: String
    public var refreshToken: String
    /// Unix seconds.
    public var expiresAt: Int64
    public var apiKey: String
    public var email: String?
    public var secureTokenURL: String

    public init(idToken: String, refreshToken: String, expiresAt: Int64, apiKey: String, email: String?, secureTokenURL: String) {
        self.idToken = idToken
        self.refreshToken = refreshToken
        self.expiresAt = expiresAt
        self.apiKey = apiKey
        self.email = email
        self.secureTokenURL = secureTokenURL
    }
}

/// Firebase Authentication's REST API: sign in with email and password (Identity Toolkit
/// `accounts:signInWithPassword`) and exchange a refresh token for a new ID token (Secure Token
/// `token`, `grant_type=refresh_token`). Base URLs are settable, for emulators and tests.
public struct FirebaseSignIn: Sendable {
    public static let identityToolkitURL = "https://identitytoolkit.googleapis.com"
    public static let secureTokenURL = "https://securetoken.googleapis.com"

    public var identityToolkitURL: String
    public var secureTokenURL: String
    public var apiKey: String
    private let http: any HTTPClient

    public init(apiKey: String, identityToolkitURL: String = Self.identityToolkitURL, secureTokenURL: String = Self.secureTokenURL, http: any HTTPClient = CurlHTTPClient()) {
        self.apiKey = apiKey
        self.identityToolkitURL = identityToolkitURL.trimmingCharacters(in: CharacterSet(charactersIn: "/"))
        self.secureTokenURL = secureTokenURL.trimmingCharacters(in: CharacterSet(charactersIn: "/"))
        self.http = http
    }

    /// Why Firebase refused: its error code (`INVALID_PASSWORD`, `TOKEN_EXPIRED` …) in words for the user.
    public struct Refusal: Error, CustomStringConvertible {
        public var code: String
        public var description: String {
            switch code {
            case "EMAIL_NOT_FOUND", "INVALID_PASSWORD", "INVALID_LOGIN_CREDENTIALS": "the email or password is wrong"
            case "USER_DISABLED": "the account is disabled"
            case "TOKEN_EXPIRED", "INVALID_REFRESH_TOKEN", "USER_NOT_FOUND":
                "the saved sign-in is no longer valid (\(code)): log in again with `gatewayctl login`"
            default: "Firebase refused the sign-in: \(code)"
            }
        }
    }

    public func signIn(email: String, password: String) async throws -> FirebaseCredentials {
        var writer = JSONWriter()
        writer.beginObject()
        writer.key("email"); writer.string(email)
        writer.key("password"); writer.string(password)
        writer.key("returnSecureToken"); writer.bool(true)
        writer.endObject()
        let reply = try await post(
            "\(identityToolkitURL)/v1/accounts:signInWithPassword?key=\(Self.encode(apiKey))", body: writer.bytes,
            contentType: "application/json"
        )
        guard case .string(let idToken)? = reply["idToken"], case .string(let refreshToken)? = reply["refreshToken"] else {
            throw Refusal(code: "MALFORMED_REPLY")
        }
        return FirebaseCredentials(
            idToken: idToken, refreshToken: refreshToken, expiresAt: Self.expiry(reply["expiresIn"]), apiKey: apiKey, email: email,
            secureTokenURL: secureTokenURL
        )
    }

    /// New ID and refresh tokens for `credentials`.
    public func refresh(_ credentials: FirebaseCredentials) async throws -> FirebaseCredentials {
        let body = "grant_type=refresh_token&refresh_token=\(Self.encode(credentials.refreshToken))"
        let reply = try await post(
            "\(credentials.secureTokenURL)/v1/token?key=\(Self.encode(credentials.apiKey))", body: Array(body.utf8),
            contentType: "application/x-www-form-urlencoded"
        )
        guard case .string(let idToken)? = reply["id_token"], case .string(let refreshToken)? = reply["refresh_token"] else {
            throw Refusal(code: "MALFORMED_REPLY")
        }
        var fresh = credentials
        fresh.idToken = idToken
        fresh.refreshToken = refreshToken
        fresh.expiresAt = Self.expiry(reply["expires_in"])
        return fresh
    }

    private func post(_ url: String, body: [UInt8], contentType: String) async throws -> JSONObject {
        let response = try await http.send(HTTPRequest(method: "POST", url: url, headers: [("Content-Type", contentType)], body: body))
        let json = try? JSONParser.parse(response.body, maxDepth: 16)
        guard response.status == 200, case .object(let object)? = json else {
            if case .object(let object)? = json, case .object(let error)? = object["error"], case .string(let message)? = error["message"] {
                // Messages look like `TOKEN_EXPIRED` or `WEAK_PASSWORD : Password should be …`.
                throw Refusal(code: String(message.prefix { $0 != " " && $0 != ":" }))
            }
            throw Refusal(code: "HTTP_\(response.status)")
        }
        return object
    }

    private static func expiry(_ value: JSONValue?) -> Int64 {
        let seconds: Int64 = switch value {
        case .string(let text)?: Int64(text) ?? 3600
        case .number(let text)?: Int64(text) ?? 3600
        default: 3600
        }
        return Int64(Date().timeIntervalSince1970) + seconds
    }

    static func encode(_ text: String) -> String {
        text.addingPercentEncoding(withAllowedCharacters: .alphanumerics.union(CharacterSet(charactersIn: "-._~"))) ?? text
    }
}

/// The token of a signed-in Firebase user, refreshed (once, whoever asks) when it is within a minute of
/// expiring or the server refused it; `onRefresh` sees the new credentials (to save them).
public final class RefreshingFirebaseToken: TokenSource {
    private let signIn: FirebaseSignIn
    private let state: Mutex<(credentials: FirebaseCredentials, refreshing: Task<FirebaseCredentials, any Error>?)>
    private let onRefresh: @Sendable (FirebaseCredentials) -> Void

    public init(_ credentials: FirebaseCredentials, http: any HTTPClient = CurlHTTPClient(), onRefresh: @escaping @Sendable (FirebaseCredentials) -> Void = { _ in }) {
        self.signIn = FirebaseSignIn(apiKey: credentials.apiKey, secureTokenURL: credentials.secureTokenURL, http: http)
        self.state = Mutex((credentials, nil))
        self.onRefresh = onRefresh
    }

    public var credentials: FirebaseCredentials { state.withLock { $0.credentials } }

    public func token(forceRefresh: Bool) async throws -> String {
        let now = Int64(Date().timeIntervalSince1970)
        let task: Task<FirebaseCredentials, any Error>? = state.withLock { state in
            guard forceRefresh || state.credentials.expiresAt - 60 <= now else { return nil }
            if let running = state.refreshing { return running }
            let current = state.credentials
            let started = Task { [signIn] in try await signIn.refresh(current) }
            state.refreshing = started
            return started
        }
        guard let task else { return state.withLock { $0.credentials.idToken } }
        do {
            let fresh = try await task.value
            let first = state.withLock { state in
                defer { state.refreshing = nil }
                let first = state.refreshing != nil
                state.credentials = fresh
                return first
            }
            if first { onRefresh(fresh) }
            return fresh.idToken
        } catch {
            state.withLock { $0.refreshing = nil }
            throw error
        }
    }
}
