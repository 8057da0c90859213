@testable import AWSAdapters
import GatewayApplication
import Logging
import Synchronization
import Testing

/// The AWS client's retries, retry budget, circuit breaker, error parsing and logging, against scripted replies.
@Suite("AWS client: retries, budget, breaker")
struct AWSClientTests {
    static let credentials = StaticCredentialProvider(AWSCredentials(
        accessKeyID: "AKIDTEST", secretAccessKey: "never-in-a-log", sessionToken: "session-token-never-in-a-log", source: "test"
    ))

    /// The waits the client asked for (recorded, not taken), and the clock moved by them.
    final class Waits: Sendable {
        let clock = FakeWallClock(UnixTime(seconds: 1_750_000_000))
        private let waits = Mutex<[Duration]>([])
        var all: [Duration] { waits.withLock { $0 } }

        func sleep(_ duration: Duration) {
            waits.withLock { $0.append(duration) }
            clock.advance(seconds: 1)
        }
    }

    /// A clock for the breaker that moves only when told.
    final class ManualClock: Sendable {
        private let instant = Mutex(ContinuousClock.now)
        var now: ContinuousClock.Instant { instant.withLock { $0 } }
        func advance(_ by: Duration) { instant.withLock { $0 += by } }
    }

    func client(
        _ http: ScriptedHTTP, service: String = "dynamodb", retry: RetryPolicy = .dynamoDB, budget: RetryBudget = RetryBudget(),
        breaker: CircuitBreaker.Settings = .defaults, breakerClock: ManualClock = ManualClock(), waits: Waits = Waits(),
        logger: Logger = Logger(label: "test")
    ) -> AWSClient {
        var settings = AWSClient.Settings.defaults
        settings.retry = retry
        settings.sleep = { waits.sleep($0) }
        return AWSClient(
            endpoint: AWSEndpoint(service: service, region: "eu-west-1", endpointURL: "http://127.0.0.1:9"), http: http,
            credentials: Self.credentials, clock: waits.clock, budget: budget,
            breaker: CircuitBreaker(endpoint: "test", settings: breaker, now: { breakerClock.now }), settings: settings, logger: logger
        )
    }

    static func dynamoError(_ code: String, status: Int = 400) -> ScriptedHTTP.Reply {
        .status(status, body: #"{"__type":"com.amazonaws.dynamodb.v20120810#\#(code)","message":"scripted"}"#)
    }

    @Test func transientFailuresAndThrottlingAreRetriedEachAttemptSignedAfresh() async throws {
        let http = ScriptedHTTP([.status(503), .failure(.connect), Self.dynamoError("ThrottlingException")])
        let waits = Waits()
        let response = try await client(http, waits: waits).send(.init(operation: "GetItem", body: Array("{}".utf8)))
        #expect(response.status == 200)
        #expect(http.requests.count == 4)
        #expect(Set(http.requests.compactMap { $0.header("X-Amz-Date") }).count == 4, "every attempt is signed with its own time")
        #expect(waits.all.count == 3)
        // Full jitter under the cap: transient waits below 25 ms × 2^(i-1), throttling below 1 s × 2^(i-1).
        #expect(waits.all[0] <= .milliseconds(25) && waits.all[1] <= .milliseconds(50) && waits.all[2] <= .seconds(4))
    }

    @Test(arguments: ["ConditionalCheckFailedException", "ValidationException", "TransactionCanceledException", "ResourceNotFoundException"])
    func refusalsOfTheRequestItselfAreNotRetried(code: String) async throws {
        let http = ScriptedHTTP([Self.dynamoError(code)])
        let error = await #expect(throws: AWSError.self) { _ = try await client(http).send(.init(operation: "PutItem")) }
        #expect(error?.code == code)
        #expect(http.requests.count == 1)
    }

    @Test func aRefusedSignatureFailsOnceWithAClearErrorAndNoSecret() async throws {
        // moto answers authentication failures as Query-protocol XML even for DynamoDB.
        let http = ScriptedHTTP([.status(403, body: "<ErrorResponse><Error><Type>Sender</Type><Code>SignatureDoesNotMatch</Code><Message>no</Message></Error><RequestId>r1</RequestId></ErrorResponse>")])
        let error = await #expect(throws: AWSError.self) { _ = try await client(http).send(.init(operation: "GetItem")) }
        #expect(http.requests.count == 1)
        #expect(error?.isAuthenticationFailure == true && error?.requestID == "r1")
        let message = error?.domainError.message ?? ""
        #expect(error?.domainError.code == .unavailable && message.contains("refused the gateway's AWS credentials"))
        #expect(!message.contains("never-in-a-log"))
    }

    @Test func ambiguousFailuresAreRetriedOnlyForIdempotentRequests() async throws {
        let once = ScriptedHTTP([.failure(.timeout)])
        await #expect(throws: AWSError.self) { _ = try await client(once).send(.init(operation: "UpdateItem", idempotent: false)) }
        #expect(once.requests.count == 1, "a timed-out conditional write may have been applied: not sent again")
        let again = ScriptedHTTP([.failure(.timeout)])
        _ = try await client(again).send(.init(operation: "GetItem"))
        #expect(again.requests.count == 2)
        let neverSent = ScriptedHTTP([.failure(.connect)])
        _ = try await client(neverSent).send(.init(operation: "UpdateItem", idempotent: false))
        #expect(neverSent.requests.count == 2, "a request that never left may always be sent again")
    }

    @Test func retryAfterIsWaitedForAndTooLongOnesAreNot() async throws {
        let waits = Waits()
        let http = ScriptedHTTP([.status(503, headers: [("Retry-After", "3")]), .status(503, headers: [("x-amz-retry-after", "1500")])])
        _ = try await client(http, waits: waits).send(.init(operation: "GetItem"))
        #expect(waits.all.count == 2 && waits.all[0] >= .seconds(3) && waits.all[1] >= .milliseconds(1500))
        let tooLong = ScriptedHTTP([.status(503, headers: [("Retry-After", "600")])])
        await #expect(throws: AWSError.self) { _ = try await client(tooLong).send(.init(operation: "GetItem")) }
        #expect(tooLong.requests.count == 1)
    }

    @Test func anEmptyBudgetStopsRetriesAndSuccessesRefillIt() async throws {
        let budget = RetryBudget()
        #expect(budget.acquire(for: .transient) == 5)
        while budget.acquire(for: .transient) != nil {}
        let http = ScriptedHTTP([.status(500)])
        let error = await #expect(throws: AWSError.self) { _ = try await client(http, budget: budget).send(.init(operation: "GetItem")) }
        #expect(http.requests.count == 1 && error?.message.contains("retry budget exhausted") == true)
        let before = budget.available
        _ = try await client(ScriptedHTTP([]), budget: budget).send(.init(operation: "GetItem"))
        #expect(budget.available == before + 1, "a first-try success gives a token back")
    }

    @Test func theBreakerOpensAfterConsecutiveFailuresFailsFastAndProbesAfterTheCooldown() async throws {
        var settings = CircuitBreaker.Settings()
        settings.threshold = 3
        settings.cooldown = .seconds(2)
        var retry = RetryPolicy.defaults
        retry.maximumAttempts = 1
        let http = ScriptedHTTP(Array(repeating: .failure(.timeout), count: 3) + [.failure(.connect)])
        let time = ManualClock()
        let aws = client(http, retry: retry, breaker: settings, breakerClock: time)
        for _ in 0..<3 { await #expect(throws: AWSError.self) { _ = try await aws.send(.init(operation: "GetItem")) } }
        let open = await #expect(throws: AWSError.self) { _ = try await aws.send(.init(operation: "GetItem")) }
        #expect(open?.kind == .circuitOpen && open?.domainError.code == .unavailable)
        #expect(http.requests.count == 3, "an open circuit sends nothing")
        time.advance(.seconds(2))
        // The probe fails: open again, for twice as long.
        await #expect(throws: AWSError.self) { _ = try await aws.send(.init(operation: "GetItem")) }
        #expect(http.requests.count == 4)
        time.advance(.seconds(3))
        #expect((try? await aws.send(.init(operation: "GetItem"))) == nil, "still open: the second cooldown is 4 s")
        time.advance(.seconds(1))
        _ = try await aws.send(.init(operation: "GetItem"))
        #expect(!aws.breaker.isOpen, "a successful probe closes the circuit")
        // Error replies that show the endpoint works do not count towards opening it.
        let refusals = ScriptedHTTP(Array(repeating: Self.dynamoError("ConditionalCheckFailedException"), count: 5))
        let healthy = client(refusals, retry: retry, breaker: settings)
        for _ in 0..<5 { await #expect(throws: AWSError.self) { _ = try await healthy.send(.init(operation: "PutItem")) } }
        #expect(!healthy.breaker.isOpen)
    }

    @Test func debugLogsNameTheOperationButNoHeaderOrSecret() async throws {
        let lines = LogCapture()
        var logger = Logger(label: "aws") { _ in lines }
        logger.logLevel = .debug
        _ = try await client(ScriptedHTTP([.status(500)]), logger: logger).send(.init(operation: "GetItem", body: Array("{}".utf8)))
        let text = lines.text
        #expect(text.contains("aws.operation=GetItem") && text.contains("aws.outcome=InternalError") && text.contains("aws.outcome=ok"))
        for secret in ["never-in-a-log", "session-token", "Signature=", "AWS4-HMAC-SHA256", "AKIDTEST"] { #expect(!text.contains(secret)) }
    }

    @Test func errorCodesAreReadFromEveryProtocol() {
        func parse(_ status: Int, _ body: String, headers: [(name: String, value: String)] = []) -> AWSError {
            AWSError.parse(service: "x", operation: "Op", response: HTTPResponse(status: status, headers: headers, body: Array(body.utf8)))
        }
        #expect(parse(400, #"{"__type":"com.amazonaws.dynamodb.v20120810#ProvisionedThroughputExceededException","Message":"slow down"}"#).code == "ProvisionedThroughputExceededException")
        #expect(parse(400, "{}", headers: [("x-amzn-errortype", "ThrottlingException:http://internal")]).code == "ThrottlingException")
        #expect(parse(404, "<Error><Code>NoSuchKey</Code><Message>gone</Message><RequestId>abc</RequestId></Error>").message == "gone")
        #expect(parse(404, "").code == "NotFound", "HEAD replies have no body")
        #expect(parse(400, "<ErrorResponse><Error><Code>NotFound</Code></Error></ErrorResponse>").code == "NotFound")
        #expect(parse(500, "<html>not xml &bogus; <").code == "InternalError", "garbage is not a crash")
    }
}

/// Collects log lines as text.
final class LogCapture: LogHandler, Sendable {
    private let lines = Mutex<[String]>([])
    var text: String { lines.withLock { $0.joined(separator: "\n") } }

    var metadata: Logger.Metadata {
        get { [:] }
        set {}
    }

    var logLevel: Logger.Level {
        get { .trace }
        set {}
    }

    subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { nil }
        set {}
    }

    func log(level: Logger.Level, message: Logger.Message, metadata: Logger.Metadata?, source: String, file: String, function: String, line: UInt) {
        let fields = (metadata ?? [:]).sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: " ")
        lines.withLock { $0.append("\(message) \(fields)") }
    }
}
