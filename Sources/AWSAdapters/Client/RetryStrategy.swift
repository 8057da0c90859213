import GatewayApplication
import Synchronization

/// When and how long to wait before sending a failed request again, after the AWS SDKs' "standard" retry mode
/// (botocore `retries/standard.py` and `quota.py`): a few attempts, capped exponential backoff with full
/// jitter, retries only for failures that may go away (connection errors, 5xx, throttling codes), and a retry
/// budget shared by every request of the process, so that an outage does not multiply the load on AWS.
public struct RetryPolicy: Sendable {
    /// Attempts in all, the first included.
    public var maximumAttempts = 3
    /// Backoff bases: attempt i waits a random time up to `min(base × 2^(i-1), maximumBackoff)`.
    public var transientBase: Duration = .milliseconds(50)
    public var throttlingBase: Duration = .seconds(1)
    public var maximumBackoff: Duration = .seconds(20)
    /// A `Retry-After` longer than this is not waited for (the request fails instead).
    public var maximumRetryAfter: Duration = .seconds(20)

    public init() {}

    public static var defaults: RetryPolicy { RetryPolicy() }

    /// DynamoDB's: four attempts from a 25 ms base (botocore's 2026 defaults for DynamoDB).
    public static var dynamoDB: RetryPolicy {
        var policy = RetryPolicy()
        policy.maximumAttempts = 4
        policy.transientBase = .milliseconds(25)
        return policy
    }

    /// Why a failure may be retried.
    public enum Retryable: Sendable, Hashable {
        case transient
        case throttled
        /// A timeout: the request may have been processed; costs the budget more.
        case timeout
    }

    static let throttlingCodes: Set<String> = [
        "Throttling", "ThrottlingException", "ThrottledException", "RequestThrottledException", "TooManyRequestsException",
        "ProvisionedThroughputExceededException", "TransactionInProgressException", "RequestLimitExceeded",
        "BandwidthLimitExceeded", "LimitExceededException", "RequestThrottled", "SlowDown", "PriorRequestNotComplete",
        "EC2ThrottledException",
    ]
    static let transientCodes: Set<String> = [
        "RequestTimeout", "RequestTimeoutException", "PriorRequestNotComplete", "InternalError", "InternalServerError",
        "InternalFailure", "ServiceUnavailable",
    ]

    /// Whether `error` may be retried. Ambiguous failures (the request may have been received) only for
    /// `idempotent` requests; replies that say the request was wrong (4xx other than throttling), never.
    static func classify(_ error: AWSError, idempotent: Bool) -> Retryable? {
        switch error.kind {
        case .circuitOpen, .credentials:
            return nil
        case .transport:
            // `connect`: never sent. The others may have reached the service.
            if error.code == "ConnectFailed" { return .transient }
            guard idempotent else { return nil }
            return error.code == "Timeout" ? .timeout : .transient
        case .reply:
            if throttlingCodes.contains(error.code) || error.status == 429 { return .throttled }
            if let status = error.status, [500, 502, 503, 504].contains(status) { return .transient }
            if transientCodes.contains(error.code) { return .transient }
            return nil
        }
    }

    /// The wait before attempt `attempt + 1` (attempt counts from 1): full jitter over the capped exponential,
    /// but at least what the service asked for with `Retry-After`.
    func delay(after attempt: Int, _ reason: Retryable, retryAfter: Duration?) -> Duration? {
        let base = reason == .throttled ? throttlingBase : transientBase
        let exponential = min(base * (1 << min(attempt - 1, 20)), maximumBackoff)
        let jittered = exponential * Double.random(in: 0...1)
        guard let retryAfter else { return jittered }
        guard retryAfter <= maximumRetryAfter else { return nil }
        return max(jittered, retryAfter)
    }
}

/// The retry quota of the AWS SDKs' standard mode (botocore `retries/quota.py`): 500 tokens; a retry costs 5
/// (10 after a timeout); a success on the first attempt gives 1 back, a success after retries gives back what
/// the retry cost. When a retry cannot be paid for, the request fails instead of adding to an outage's load.
public final class RetryBudget: Sendable {
    public static let capacity = 500
    static let retryCost = 5
    static let timeoutCost = 10

    private let tokens = Mutex(RetryBudget.capacity)

    public init() {}

    public var available: Int { tokens.withLock { $0 } }

    /// Takes the cost of one retry; nil when the budget cannot pay.
    func acquire(for reason: RetryPolicy.Retryable) -> Int? {
        let cost = reason == .timeout ? Self.timeoutCost : Self.retryCost
        return tokens.withLock { tokens in
            guard tokens >= cost else { return nil }
            tokens -= cost
            return cost
        }
    }

    /// A request succeeded: `refund` is what its last retry cost (0 when it succeeded at once).
    func succeeded(refund: Int) {
        tokens.withLock { $0 = min(Self.capacity, $0 + (refund == 0 ? 1 : refund)) }
    }
}

/// Per endpoint: closed (requests go through) → open after `threshold` consecutive failures (requests fail at
/// once, as `UNAVAILABLE` to the RPC) → after `cooldown`, half-open: one request probes, the others still fail
/// fast; the probe's success closes the circuit, its failure opens it again for twice as long (up to
/// `maximumCooldown`). Failures are the endpoint's: no connection, timeouts, 5xx. Error replies such as
/// throttling or a failed condition show that the endpoint works.
public final class CircuitBreaker: Sendable {
    public struct Settings: Sendable {
        public var threshold = 5
        public var cooldown: Duration = .seconds(2)
        public var maximumCooldown: Duration = .seconds(10)

        public init() {}

        public static var defaults: Settings { Settings() }
    }

    private enum State {
        case closed(failures: Int)
        case open(until: ContinuousClock.Instant, cooldown: Duration)
        case halfOpen(cooldown: Duration)
    }

    public let endpoint: String
    private let settings: Settings
    private let state = Mutex(State.closed(failures: 0))
    private let now: @Sendable () -> ContinuousClock.Instant

    /// `now` tells the time (replaced in tests).
    public init(endpoint: String, settings: Settings = .defaults, now: @escaping @Sendable () -> ContinuousClock.Instant = { .now }) {
        self.endpoint = endpoint
        self.settings = settings
        self.now = now
    }

    /// Whether a request may go now. A false answer says how long until the next probe.
    func permit() -> (allowed: Bool, retryIn: Duration) {
        let now = now()
        return state.withLock { state in
            switch state {
            case .closed:
                return (true, .zero)
            case .open(let until, let cooldown):
                guard now >= until else { return (false, until - now) }
                state = .halfOpen(cooldown: cooldown)
                return (true, .zero)  // this request is the probe
            case .halfOpen:
                return (false, .zero)
            }
        }
    }

    func recordSuccess() {
        state.withLock { $0 = .closed(failures: 0) }
    }

    /// Returns true when this failure opened the circuit.
    @discardableResult
    func recordFailure() -> Bool {
        let now = now()
        return state.withLock { state in
            switch state {
            case .closed(let failures):
                guard failures + 1 >= settings.threshold else {
                    state = .closed(failures: failures + 1)
                    return false
                }
                state = .open(until: now + settings.cooldown, cooldown: settings.cooldown)
                return true
            case .halfOpen(let cooldown):
                let next = min(cooldown * 2, settings.maximumCooldown)
                state = .open(until: now + next, cooldown: next)
                return true
            case .open:
                return false
            }
        }
    }

    /// The probe's request ended without telling anything about the endpoint (e.g. cancelled): let another probe.
    func recordNeutral() {
        state.withLock { state in
            if case .halfOpen(let cooldown) = state { state = .open(until: now(), cooldown: cooldown) }
        }
    }

    public var isOpen: Bool {
        state.withLock { if case .closed = $0 { false } else { true } }
    }
}
