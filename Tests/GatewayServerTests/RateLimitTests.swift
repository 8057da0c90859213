@testable import GatewayServer
import GatewayApplication
import GatewayProtos
import RPCCore
import Synchronization
import Testing

/// Per-principal token buckets (RateLimitInterceptor), on a clock the test moves.
@Suite("rate limits")
struct RateLimitTests {
    final class TestClock: Sendable {
        private let now = Mutex(ContinuousClock.now)
        func read() -> ContinuousClock.Instant { now.withLock { $0 } }
        func advance(_ duration: Duration) { now.withLock { $0 += duration } }
    }

    static let write = MethodDescriptor(service: .init(fullyQualifiedName: "gateway.user.v1.UserService"), method: "CreateSession", kind: .unary)
    static let read = MethodDescriptor(service: .init(fullyQualifiedName: "gateway.user.v1.UserService"), method: "GetUser", kind: .unary)

    /// Runs one call through `interceptor` as `principal`; nil when it went through, else its error.
    func call(_ interceptor: RateLimitInterceptor, _ method: MethodDescriptor, as principal: Principal) async -> RPCError? {
        var context = ServerContext(descriptor: method, requestMetadata: [:], peer: "test", deadline: nil)
        context.values[PrincipalKey.self] = principal
        let stream = RPCServerStream(inbound: RPCAsyncSequence(wrapping: AsyncStream<[UInt8]> { $0.finish() }), outbound: RPCWriter { _ in })
        do {
            try await interceptor.intercept(stream, context: context) { _, _ in }
            return nil
        } catch let error as RPCError {
            return error
        } catch {
            Issue.record("unexpected \(error)")
            return nil
        }
    }

    func principal(_ uid: String, tenant: String? = nil) -> Principal {
        Principal(uid: uid, tenant: tenant, expiresAt: 2_000_000_000)
    }

    /// PublishStream's events are writes each: past the burst, the stream is paced (the next message is read
    /// once a token is there), not refused.
    @Test func aPublishStreamIsPacedToTheWriteRate() async throws {
        let clock = TestClock()
        var settings = RateLimitInterceptor.Settings()
        settings.write = .init(perSecond: 10, burst: 5)
        let limiter = RateLimitInterceptor(settings: settings, clock: { clock.read() })
        let method = MethodDescriptor(service: .init(fullyQualifiedName: "gateway.event.v1.EventService"), method: "PublishStream", kind: .bidirectionalStreaming)
        var context = ServerContext(descriptor: method, requestMetadata: [:], peer: "test", deadline: nil)
        context.values[PrincipalKey.self] = principal("alice")
        let messages = RPCAsyncSequence.elements(Array(repeating: [UInt8](), count: 8))
        let stream = RPCServerStream(inbound: messages, outbound: RPCWriter { _ in })
        let read = Atomic<Int>(0)
        let call = Task {
            try await limiter.intercept(stream, context: context) { stream, _ in
                for try await _ in stream.inbound { read.add(1, ordering: .relaxed) }
            }
        }
        // The call's token and four more: five messages, then the sixth waits for the clock.
        while read.load(ordering: .relaxed) < 5 { await Task.yield() }
        try await Task.sleep(for: .milliseconds(50))
        #expect(read.load(ordering: .relaxed) == 5)
        clock.advance(.milliseconds(300))  // three tokens
        try await call.value
        #expect(read.load(ordering: .relaxed) == 8)
        // Other methods, and admins, are not paced per message.
        #expect(!RateLimitInterceptor.perMessageMethods.contains(Self.write.description))
    }

    @Test func aUserGetsTheBurstThenTheRateAndOthersAreUntouched() async throws {
        let clock = TestClock()
        var settings = RateLimitInterceptor.Settings()
        settings.write = .init(perSecond: 2, burst: 3)
        let limiter = RateLimitInterceptor(settings: settings, clock: { clock.read() })
        for _ in 0..<3 { #expect(await call(limiter, Self.write, as: principal("alice")) == nil) }
        let refused = await call(limiter, Self.write, as: principal("alice"))
        #expect(refused?.code == .resourceExhausted)
        #expect(refused?.message == "rate limit: write calls are limited for one user; retry in 500 ms")
        // The retry delay, as google.rpc.Status { details: [Any(google.rpc.RetryInfo)] } in the trailer.
        let details = try #require(refused?.metadata[binaryValues: "grpc-status-details-bin"].first)
        let status = try Gateway_Common_V1_StatusDetails(serializedBytes: details)
        #expect(status.code == 8 && status.details.first?.typeUrl == "type.googleapis.com/google.rpc.RetryInfo")
        let retry = try Gateway_Common_V1_RetryInfo(serializedBytes: status.details[0].value)
        #expect(retry.retryDelay?.seconds == 0 && retry.retryDelay?.nanos == 500_000_000)
        // Reads have their own bucket; other users theirs.
        #expect(await call(limiter, Self.read, as: principal("alice")) == nil)
        #expect(await call(limiter, Self.write, as: principal("bob")) == nil)
        // Half a second later: one more token.
        clock.advance(.milliseconds(500))
        #expect(await call(limiter, Self.write, as: principal("alice")) == nil)
        #expect(await call(limiter, Self.write, as: principal("alice"))?.code == .resourceExhausted)
    }

    @Test func aTenantsUsersShareTheTenantsBucket() async throws {
        let clock = TestClock()
        var settings = RateLimitInterceptor.Settings()
        settings.write = .init(perSecond: 1, burst: 1)
        settings.tenantMultiple = 2
        let limiter = RateLimitInterceptor(settings: settings, clock: { clock.read() })
        #expect(await call(limiter, Self.write, as: principal("a", tenant: "t")) == nil)
        #expect(await call(limiter, Self.write, as: principal("b", tenant: "t")) == nil)
        let third = await call(limiter, Self.write, as: principal("c", tenant: "t"))
        #expect(third?.message.contains("this tenant's users together") == true)
        #expect(await call(limiter, Self.write, as: principal("d", tenant: "other")) == nil)
    }

    @Test func aRateOfZeroIsNoLimit() async throws {
        var settings = RateLimitInterceptor.Settings()
        settings.write = .init(perSecond: 0, burst: 1)
        let limiter = RateLimitInterceptor(settings: settings)
        for _ in 0..<1000 { #expect(await call(limiter, Self.write, as: principal("alice")) == nil) }
    }
}
