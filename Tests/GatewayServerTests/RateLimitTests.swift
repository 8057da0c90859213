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
