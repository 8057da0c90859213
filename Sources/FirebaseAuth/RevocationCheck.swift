import GatewayApplication
import ProtoRuntime
import Synchronization

/// `check_revoked` (a Firebase Admin SDK option), off by default: after a token verifies, asks the Identity Toolkit
/// `accounts:lookup` API (as a service account) whether its user is disabled or has revoked tokens issued before
/// `validSince`, as firebase-admin-python and -go do (they compare `iat`; Node compares `auth_time`). Answers
/// are cached per user for `cacheSeconds`, so a revocation takes effect within that time. If the directory
/// cannot be asked, the call fails closed with `revocationCheckUnavailable` (UNAVAILABLE).
public struct RevocationCheckingVerifier: TokenVerifier {
    public struct Configuration: Sendable {
        public var projectID: String
        /// Base URL of the Identity Toolkit API.
        public var identityToolkitURL = "https://identitytoolkit.googleapis.com"
        public var cacheSeconds: Int64 = 30
        public var cacheCapacity = 10_000

        public init(projectID: String) {
            self.projectID = projectID
        }
    }

    private let base: any TokenVerifier
    private let directory: UserDirectory

    public init(
        verifying base: any TokenVerifier, configuration: Configuration, account: ServiceAccount,
        http: any HTTPClient, clock: any WallClock
    ) {
        self.base = base
        directory = UserDirectory(
            configuration: configuration, tokens: GoogleAccessTokens(account: account, http: http, clock: clock),
            http: http, clock: clock
        )
    }

    public func verify(_ token: String, kind: TokenKind) async throws(TokenVerificationError) -> Principal {
        let principal = try await base.verify(token, kind: kind)
        let status: UserDirectory.Status
        do {
            status = try await directory.status(of: principal.uid)
        } catch {
            throw TokenVerificationError(.revocationCheckUnavailable, "cannot check whether the \(kind) was revoked now; retry later")
        }
        switch status {
        case .notFound:
            throw TokenVerificationError(.userNotFound, "the \(kind)'s user no longer exists")
        case .found(let disabled, let validSince):
            if disabled { throw TokenVerificationError(.userDisabled, "the user account is disabled") }
            if let validSince, (principal.issuedAt ?? 0) < validSince {
                throw TokenVerificationError(.revoked, "the \(kind) has been revoked; sign in again")
            }
        }
        return principal
    }
}

/// Users' disabled flag and `validSince`, from `accounts:lookup`, cached briefly.
final class UserDirectory: Sendable {
    enum Status: Sendable {
        case notFound
        case found(disabled: Bool, validSince: Int64?)
    }

    private struct Entry {
        var status: Status
        var fetchedAt: Int64
    }

    private let configuration: RevocationCheckingVerifier.Configuration
    private let tokens: GoogleAccessTokens
    private let http: any HTTPClient
    private let clock: any WallClock
    private let cache = Mutex<[String: Entry]>([:])

    init(configuration: RevocationCheckingVerifier.Configuration, tokens: GoogleAccessTokens, http: any HTTPClient, clock: any WallClock) {
        self.configuration = configuration
        self.tokens = tokens
        self.http = http
        self.clock = clock
    }

    func status(of uid: String) async throws -> Status {
        let now = clock.now().seconds
        if let entry = cache.withLock({ $0[uid] }), now - entry.fetchedAt < configuration.cacheSeconds {
            return entry.status
        }
        let status = try await lookup(uid)
        cache.withLock { cache in
            if cache.count >= configuration.cacheCapacity {
                cache = cache.filter { now - $0.value.fetchedAt < configuration.cacheSeconds }
                if cache.count >= configuration.cacheCapacity { cache.removeAll(keepingCapacity: true) }
            }
            cache[uid] = Entry(status: status, fetchedAt: now)
        }
        return status
    }

    private func lookup(_ uid: String) async throws -> Status {
        let url = "\(configuration.identityToolkitURL)/v1/projects/\(configuration.projectID)/accounts:lookup"
        var body = JSONWriter()
        body.beginObject()
        body.key("localId"); body.beginArray(); body.string(uid); body.endArray()
        body.endObject()
        let response = try await http.send(HTTPRequest(
            method: "POST", url: url,
            headers: [("Authorization", "Bearer \(try await tokens.token())"), ("Content-Type", "application/json")],
            body: body.bytes, timeout: .seconds(5)
        ))
        guard response.status == 200 else { throw HTTPClientError(url: url, reason: "status \(response.status)") }
        guard case .object(let reply) = try JSONParser.parse(response.body, maxDepth: 16) else {
            throw HTTPClientError(url: url, reason: "not a JSON object")
        }
        guard case .array(let users)? = reply["users"],
              let user = users.lazy.compactMap({ if case .object(let o) = $0 { o } else { nil } }).first(where: { $0.string("localId") == uid })
        else { return .notFound }
        // validSince is seconds, sent as a decimal string.
        let validSince = user.string("validSince").flatMap { Int64($0) } ?? user.seconds("validSince")
        return .found(disabled: user.bool("disabled") ?? false, validSince: validSince)
    }
}
