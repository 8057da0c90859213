import GatewayApplication
import OpenSSLCrypto
import ProtoRuntime
import Synchronization

/// Where a verifier gets the public key for a token's `kid`.
public protocol SigningKeySource: Sendable {
    func key(id: String) async throws(TokenVerificationError) -> RSAPublicKey
    /// Loads the keys ahead of the first token (Google's first download can take seconds).
    func prefetch() async
}

/// Keys from a `{kid: PEM certificate}` document (Google's format, not JWKS), cached by `Cache-Control:
/// max-age` (as Firebase's "Verify ID tokens using a third-party JWT library" asks):
/// - `max-age` clamped to [1 min, 24 h]; a missing or unparsable one counts as the minimum;
/// - refreshed in the background shortly before it expires, by one request however many callers;
/// - an unknown `kid` triggers at most one refresh per `unknownKeyRefreshInterval`, then is refused; a
///   request that comes while a refresh is running, or after one finished since it looked, is judged on that
///   refresh's keys (the limit refuses new refreshes, never the answer of one already made);
/// - a failed refresh keeps the last good keys for `staleGrace` past their expiry; with no usable keys the
///   answer is `keysUnavailable` (UNAVAILABLE, not UNAUTHENTICATED).
public final class HTTPSigningKeys: SigningKeySource {
    public struct Configuration: Sendable {
        public var url: String
        public var minimumTTL: Int64 = 60
        public var maximumTTL: Int64 = 86_400
        public var refreshAhead: Int64 = 300
        public var unknownKeyRefreshInterval: Int64 = 30
        public var staleGrace: Int64 = 86_400
        public var timeout: Duration = .seconds(10)
        public var connectTimeout: Duration = .seconds(3)

        public init(url: String) {
            self.url = url
        }
    }

    private struct KeySet {
        var keys: [String: RSAPublicKey]
        var expiresAt: Int64
        /// Which fetch this is: tells a caller whether the keys changed since it looked.
        var generation = 0
    }

    private struct State {
        var current: KeySet?
        var refresh: Task<KeySet, any Error>?
        var lastUnknownKeyRefresh: Int64?
        var fetches = 0
    }

    private let configuration: Configuration
    private let http: any HTTPClient
    private let clock: any WallClock
    private let state = Mutex(State())

    public init(configuration: Configuration, http: any HTTPClient, clock: any WallClock) {
        self.configuration = configuration
        self.http = http
        self.clock = clock
    }

    public func prefetch() async {
        _ = try? await refreshed()
    }

    public func key(id: String) async throws(TokenVerificationError) -> RSAPublicKey {
        let now = clock.now().seconds
        let current = state.withLock { $0.current }
        if let current, now < current.expiresAt {
            if now >= current.expiresAt - configuration.refreshAhead { startRefresh() }
            if let key = current.keys[id] { return key }
            return try await afterUnknownKeyRefresh(id: id, now: now, seen: current.generation)
        }
        // Expired or never loaded: wait for fresh keys, or fall back to stale ones within the grace period.
        do {
            let fresh = try await refreshed()
            if let key = fresh.keys[id] { return key }
            throw Self.unknownKey
        } catch let error as TokenVerificationError {
            throw error
        } catch {
            if let current, now < current.expiresAt + configuration.staleGrace {
                if let key = current.keys[id] { return key }
                throw Self.unknownKey
            }
            throw TokenVerificationError(.keysUnavailable, "cannot verify tokens now: the public signing keys are unavailable")
        }
    }

    static let unknownKey = TokenVerificationError(
        .unknownKey, "token \"kid\" does not match a current signing key; get a fresh token and retry"
    )

    /// A kid we do not know may be a new key: judge it on keys newer than those we looked at (a refresh
    /// running now, or one that finished since), else refresh once (rate-limited), then decide.
    private func afterUnknownKeyRefresh(id: String, now: Int64, seen: Int) async throws(TokenVerificationError) -> RSAPublicKey {
        enum Plan {
            case wait(Task<KeySet, any Error>)
            case judge(KeySet)
            case refuse
        }
        let plan: Plan = state.withLock { s in
            if let running = s.refresh { return .wait(running) }
            if let current = s.current, current.generation != seen { return .judge(current) }
            if let last = s.lastUnknownKeyRefresh, now - last < configuration.unknownKeyRefreshInterval { return .refuse }
            s.lastUnknownKeyRefresh = now
            return .wait(refreshTask(&s))
        }
        let keys: KeySet? = switch plan {
        case .wait(let refresh): try? await refresh.value
        case .judge(let current): current
        case .refuse: nil
        }
        guard let key = keys?.keys[id] else { throw Self.unknownKey }
        return key
    }

    private func startRefresh() {
        state.withLock { _ = refreshTask(&$0) }
    }

    /// The keys after a refresh; concurrent callers share one request.
    private func refreshed() async throws -> KeySet {
        try await state.withLock { refreshTask(&$0) }.value
    }

    /// The running refresh, or a new one (under the state's lock).
    private func refreshTask(_ s: inout State) -> Task<KeySet, any Error> {
        if let running = s.refresh { return running }
        let task = Task { [self] in
            let fetched: Result<KeySet, any Error>
            do { fetched = .success(try await fetch()) } catch { fetched = .failure(error) }
            // One step: no caller sees the refresh gone while the keys are still the old ones.
            return try state.withLock { s in
                s.refresh = nil
                guard case .success(var set) = fetched else { return try fetched.get() }
                s.fetches += 1
                set.generation = s.fetches
                s.current = set
                return set
            }
        }
        s.refresh = task
        return task
    }

    private func fetch() async throws -> KeySet {
        // No Authorization header: Google's key endpoints reject authorized requests (firebase-admin-go PR #161).
        let response = try await http.send(HTTPRequest(
            url: configuration.url, timeout: configuration.timeout, connectTimeout: configuration.connectTimeout
        ))
        guard response.status == 200 else {
            throw HTTPClientError(url: configuration.url, reason: "status \(response.status)")
        }
        guard case .object(let document) = try JSONParser.parse(response.body, maxDepth: 4) else {
            throw HTTPClientError(url: configuration.url, reason: "not a JSON object")
        }
        var keys: [String: RSAPublicKey] = [:]
        for (kid, value) in document.entries {
            guard case .string(let pem) = value, let key = try? RSAPublicKey(certificatePEM: Array(pem.utf8)) else { continue }
            keys[kid] = key
        }
        guard !keys.isEmpty else { throw HTTPClientError(url: configuration.url, reason: "no usable RSA certificate") }
        let ttl = min(max(Self.maxAge(response.header("cache-control")) ?? 0, configuration.minimumTTL), configuration.maximumTTL)
        return KeySet(keys: keys, expiresAt: clock.now().seconds + ttl)
    }

    /// `max-age=N` from a Cache-Control header.
    static func maxAge(_ header: String?) -> Int64? {
        guard let header else { return nil }
        for directive in header.split(separator: ",") {
            let parts = directive.split(separator: "=", maxSplits: 1).map { $0.trimmingCharacters(in: " \t") }
            if parts.count == 2, parts[0].lowercased() == "max-age" { return Int64(parts[1]) }
        }
        return nil
    }
}

/// Fixed keys: local mode's own key, and tests.
public struct StaticSigningKeys: SigningKeySource {
    private let keys: [String: RSAPublicKey]

    public init(_ keys: [String: RSAPublicKey]) {
        self.keys = keys
    }

    public func key(id: String) async throws(TokenVerificationError) -> RSAPublicKey {
        guard let key = keys[id] else { throw HTTPSigningKeys.unknownKey }
        return key
    }

    public func prefetch() async {}
}

extension Substring {
    fileprivate func trimmingCharacters(in set: String) -> String {
        String(drop { set.contains($0) }.reversed().drop { set.contains($0) }.reversed())
    }
}
