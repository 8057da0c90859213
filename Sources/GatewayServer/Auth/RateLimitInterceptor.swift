import GatewayApplication
import GatewayProtos
import RPCCore
import StandardProtos
import Synchronization

/// Per-principal request rates, so that one noisy caller cannot starve the rest: a token bucket per uid, and
/// one per tenant (Identity Platform) shared by its users, for each class of method (reads: `Get…`, `List…`,
/// `Count…`, `Download…`, `Subscribe`; writes: the rest). Over the limit a call is `RESOURCE_EXHAUSTED` before
/// it does any work, with the delay after which a token will be there as a `google.rpc.RetryInfo` in
/// `grpc-status-details-bin` (gRPC doc/statuscodes.md; AIP-193). Callers with the `admin` claim are not
/// limited (operators and the backend jobs they run). Placed after ``AuthInterceptor``.
///
/// On a method whose every request message is one write (``perMessageMethods``: `PublishStream`), each message
/// after the first takes a token too; over the limit the stream is not refused but paced: the next message
/// is read once a token is there, and HTTP/2 flow control holds the client back meanwhile.
public struct RateLimitInterceptor: ServerInterceptor {
    /// One class's rate (calls per second, refilled continuously) and burst (the bucket's size); a rate of 0
    /// turns the class's limit off.
    public struct Rate: Sendable, Equatable {
        public var perSecond: Double
        public var burst: Double

        public init(perSecond: Double, burst: Double) {
            self.perSecond = perSecond
            self.burst = max(1, burst)
        }
    }

    public struct Settings: Sendable, Equatable {
        public var read = Rate(perSecond: 1000, burst: 2000)
        public var write = Rate(perSecond: 500, burst: 1000)
        /// A tenant's buckets hold this many times a user's.
        public var tenantMultiple = 20.0

        public init() {}
    }

    enum MethodClass: Int { case read, write }

    private let settings: Settings
    private let buckets: TokenBuckets

    /// Streaming methods whose request messages are each a write of their own.
    static let perMessageMethods: Set<String> = ["gateway.event.v1.EventService/PublishStream"]

    public init(settings: Settings, clock: @escaping @Sendable () -> ContinuousClock.Instant = { .now }) {
        self.settings = settings
        buckets = TokenBuckets(clock: clock)
    }

    static func methodClass(of descriptor: MethodDescriptor) -> MethodClass {
        let name = descriptor.method
        let reads = ["Get", "List", "Count", "Download", "Subscribe"]
        return reads.contains { name.hasPrefix($0) } ? .read : .write
    }

    public func intercept(
        _ stream: RPCServerStream,
        context: ServerContext,
        next: @Sendable (RPCServerStream, ServerContext) async throws -> Void
    ) async throws {
        guard let principal = context.principal, !principal.isAdmin else { return try await next(stream, context) }
        let kind = Self.methodClass(of: context.descriptor)
        let rate = kind == .read ? settings.read : settings.write
        guard rate.perSecond > 0 else { return try await next(stream, context) }
        var keys = [TokenBuckets.Key(kind: kind, owner: "user:" + principal.uid, rate: rate)]
        if let tenant = principal.tenant {
            let shared = Rate(perSecond: rate.perSecond * settings.tenantMultiple, burst: rate.burst * settings.tenantMultiple)
            keys.append(TokenBuckets.Key(kind: kind, owner: "tenant:" + tenant, rate: shared))
        }
        if let wait = buckets.take(keys) {
            throw Self.refusal(kind: kind, rate: rate, wait: wait, tenant: keys.count > 1 && wait.tenant)
        }
        guard Self.perMessageMethods.contains(context.descriptor.description) else { return try await next(stream, context) }
        let paced = PacedMessages(base: stream.inbound, buckets: buckets, keys: keys)
        try await next(RPCServerStream(inbound: RPCAsyncSequence(wrapping: paced), outbound: stream.outbound), context)
    }

    private static func refusal(kind: MethodClass, rate: Rate, wait: TokenBuckets.Wait, tenant: Bool) -> RPCError {
        let what = kind == .read ? "read" : "write"
        let whose = tenant ? "this tenant's users together" : "one user"
        let milliseconds = max(1, Int((wait.seconds * 1000).rounded(.up)))
        let message = "rate limit: \(what) calls are limited for \(whose); retry in \(milliseconds) ms"
        var retry = Gateway_Common_V1_RetryInfo()
        var delay = Google_Protobuf_Duration()
        delay.seconds = Int64(milliseconds / 1000)
        delay.nanos = Int32(milliseconds % 1000) * 1_000_000
        retry.retryDelay = delay
        var detail = Gateway_Common_V1_AnyDetail()
        detail.typeUrl = "type.googleapis.com/google.rpc.RetryInfo"
        detail.value = (try? retry.serializedBytes()) ?? []
        var status = Gateway_Common_V1_StatusDetails()
        status.code = Int32(StatusCode.resourceExhausted.rawValue)
        status.message = message
        status.details = [detail]
        var metadata = Metadata()
        if let bytes = try? status.serializedBytes() { metadata.addBinary(bytes, forKey: "grpc-status-details-bin") }
        return RPCError(code: .resourceExhausted, message: message, metadata: metadata)
    }
}

/// Request messages of which each after the first waits for a token of `keys`.
struct PacedMessages: AsyncSequence, Sendable {
    let base: RPCAsyncSequence<[UInt8]>
    let buckets: TokenBuckets
    let keys: [TokenBuckets.Key]

    struct AsyncIterator: AsyncIteratorProtocol {
        var base: RPCAsyncSequence<[UInt8]>.AsyncIterator
        let buckets: TokenBuckets
        let keys: [TokenBuckets.Key]
        var first = true

        mutating func next() async throws -> [UInt8]? {
            guard let message = try await base.next() else { return nil }
            if first {
                first = false  // the call's own token paid for it
            } else {
                while let wait = buckets.take(keys) {
                    try await Task.sleep(for: .milliseconds(Swift.max(1, Int((wait.seconds * 1000).rounded(.up)))))
                }
            }
            return message
        }
    }

    func makeAsyncIterator() -> AsyncIterator {
        AsyncIterator(base: base.makeAsyncIterator(), buckets: buckets, keys: keys)
    }
}

/// The buckets, in one map under one lock: taking tokens is a few arithmetic operations. Buckets that have
/// refilled completely are forgotten when the map grows past `capacity`, so memory follows the callers
/// active now, not every caller ever seen.
final class TokenBuckets: Sendable {
    struct Key: Hashable {
        var kind: RateLimitInterceptor.MethodClass
        var owner: String
        var rate: RateLimitInterceptor.Rate

        static func == (a: Key, b: Key) -> Bool { a.kind == b.kind && a.owner == b.owner }
        func hash(into hasher: inout Hasher) {
            hasher.combine(kind)
            hasher.combine(owner)
        }
    }

    struct Wait {
        var seconds: Double
        /// The tenant's bucket, not the user's, is the one that is empty.
        var tenant: Bool
    }

    private struct Bucket {
        var tokens: Double
        var updated: ContinuousClock.Instant
    }

    private let clock: @Sendable () -> ContinuousClock.Instant
    private let capacity: Int
    private let state = Mutex<[Key: Bucket]>([:])

    init(clock: @escaping @Sendable () -> ContinuousClock.Instant, capacity: Int = 100_000) {
        self.clock = clock
        self.capacity = capacity
    }

    /// Takes a token from every bucket of `keys`, or from none: nil when it did, else how long until each has one.
    func take(_ keys: [Key]) -> Wait? {
        let now = clock()
        return state.withLock { buckets in
            var levels: [Double] = []
            var wait: Wait?
            for (index, key) in keys.enumerated() {
                let bucket = buckets[key]
                let elapsed = bucket.map { Self.seconds(now - $0.updated) } ?? 0
                let level = min(key.rate.burst, (bucket?.tokens ?? key.rate.burst) + elapsed * key.rate.perSecond)
                levels.append(level)
                if level < 1 {
                    let seconds = (1 - level) / key.rate.perSecond
                    if seconds > wait?.seconds ?? 0 { wait = Wait(seconds: seconds, tenant: index > 0) }
                }
            }
            for (key, level) in zip(keys, levels) {
                buckets[key] = Bucket(tokens: wait == nil ? level - 1 : level, updated: now)
            }
            if buckets.count > capacity {
                buckets = buckets.filter { key, bucket in
                    bucket.tokens + Self.seconds(now - bucket.updated) * key.rate.perSecond < key.rate.burst
                }
            }
            return wait
        }
    }

    private static func seconds(_ duration: Duration) -> Double {
        let (seconds, attoseconds) = duration.components
        return Double(seconds) + Double(attoseconds) / 1e18
    }
}
