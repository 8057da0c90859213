import GatewayApplication
import Logging
import OpenSSLCrypto

/// Where one AWS service is reached and how its requests are signed.
public struct AWSEndpoint: Sendable, Hashable, CustomStringConvertible {
    /// `scheme://host[:port]`, without a path.
    public var url: String
    public var region: String
    /// The signing name: `dynamodb`, `s3`, `sns`, `sts`.
    public var service: String

    /// `endpointURL` overrides AWS's regional endpoint (any service-compatible server, e.g. a local one).
    public init(service: String, region: String, endpointURL: String? = nil) {
        self.service = service
        self.region = region
        var url = endpointURL ?? "https://\(service).\(region).amazonaws.com"
        while url.hasSuffix("/") { url.removeLast() }
        self.url = url
    }

    /// The `Host` header: the authority, without the scheme's default port.
    var host: String {
        var authority = Substring(url)
        for scheme in ["https://", "http://"] where authority.hasPrefix(scheme) { authority = authority.dropFirst(scheme.count) }
        if let slash = authority.firstIndex(of: "/") { authority = authority[..<slash] }
        if url.hasPrefix("http://"), authority.hasSuffix(":80") { authority = authority.dropLast(3) }
        if url.hasPrefix("https://"), authority.hasSuffix(":443") { authority = authority.dropLast(4) }
        return String(authority)
    }

    public var description: String { "\(service) at \(url)" }
}

/// Sends signed requests to one AWS endpoint with the retry policy, the process's retry budget and the
/// endpoint's circuit breaker. Every attempt is signed again with a fresh time. Requests are logged at debug
/// level with their operation, status and duration, never with headers (which carry the signature).
public final class AWSClient: Sendable {
    public struct Settings: Sendable {
        public var retry = RetryPolicy.defaults
        /// One attempt of a buffered request, connect included.
        public var timeout: Duration = .seconds(10)
        public var connectTimeout: Duration = .seconds(3)
        /// A streamed transfer that moves no byte for this long (while its reader reads) is abandoned.
        public var idleTimeout: Duration = .seconds(30)
        /// How the client waits between attempts (replaced in tests to see the waits without taking them).
        public var sleep: @Sendable (Duration) async throws -> Void = { try await Task.sleep(for: $0) }

        public init() {}

        public static var defaults: Settings { Settings() }
    }

    /// One request as the adapters describe it.
    struct Request: Sendable {
        var operation: String
        var method = "POST"
        /// Percent-encoded once, from `/`.
        var path = "/"
        /// Percent-encoded, without `?`.
        var query = ""
        var headers: [(name: String, value: String)] = []
        var body: [UInt8] = []
        /// May be sent again after a failure that leaves unknown whether it was processed.
        var idempotent = true
    }

    public let endpoint: AWSEndpoint
    private let http: any HTTPClient
    private let credentials: any AWSCredentialProvider
    private let clock: any WallClock
    private let budget: RetryBudget
    public let breaker: CircuitBreaker
    private let signer: SigV4Signer
    private let settings: Settings
    private let logger: Logger

    public init(
        endpoint: AWSEndpoint, http: any HTTPClient, credentials: any AWSCredentialProvider, clock: any WallClock,
        budget: RetryBudget, breaker: CircuitBreaker? = nil, settings: Settings = .defaults, logger: Logger
    ) {
        self.endpoint = endpoint
        self.http = http
        self.credentials = credentials
        self.clock = clock
        self.budget = budget
        self.breaker = breaker ?? CircuitBreaker(endpoint: endpoint.url)
        self.signer = SigV4Signer(region: endpoint.region, service: endpoint.service)
        self.settings = settings
        self.logger = logger
    }

    /// Sends a request with a body in memory; returns a 2xx reply or throws ``AWSError``.
    func send(_ request: Request) async throws -> HTTPResponse {
        let payloadHash = Hex.lowercase(Digest.sha256(request.body))
        return try await perform(request, payloadHash: payloadHash) { http, signed in
            let response = try await http.send(signed)
            return (200..<300).contains(response.status) ? .success(response) : .failure(response)
        }
    }

    /// Sends a request whose body (if any) is streamed from `body()`, called once per attempt, and whose reply
    /// body is streamed to the caller. Retries happen only before a 2xx head arrives.
    func stream(_ request: Request, payloadHash: String, body: (@Sendable () -> HTTPBodySource)? = nil) async throws -> HTTPStreamingResponse {
        try await perform(request, payloadHash: payloadHash) { http, signed in
            var signed = signed
            signed.timeout = nil
            let response = try await http.stream(signed, body: body?())
            guard (200..<300).contains(response.status) else {
                let errorBody = try await response.collect(upTo: 1 << 20)
                return .failure(HTTPResponse(status: response.status, headers: response.headers, body: errorBody))
            }
            return .success(response)
        }
    }

    /// A presigned URL for `request` (S3 GET or PUT): valid for `expiresInSeconds`, signed with the current
    /// credentials (which, when temporary, expire first).
    func presignedURL(method: String, path: String, query: String = "", expiresInSeconds: Int) async throws -> String {
        let credentials = try await currentCredentials(operation: "Presign")
        let signed = signer.presignedQuery(
            .init(method: method, host: endpoint.host, path: path, query: query), expiresInSeconds: expiresInSeconds,
            credentials: credentials, at: clock.now()
        )
        return "\(endpoint.url)\(path)?\(signed)"
    }

    private enum Outcome<T: Sendable>: Sendable {
        case success(T)
        case failure(HTTPResponse)
    }

    private func perform<T: Sendable>(
        _ request: Request, payloadHash: String,
        exchange: (any HTTPClient, HTTPRequest) async throws -> Outcome<T>
    ) async throws -> T {
        var attempt = 0
        var lastRetryCost = 0
        while true {
            attempt += 1
            let permit = breaker.permit()
            guard permit.allowed else {
                throw AWSError(
                    kind: .circuitOpen, service: endpoint.service, operation: request.operation, code: "CircuitOpen",
                    message: "\(endpoint.url) failed repeatedly; the gateway fails fast and probes it again in \(Self.seconds(permit.retryIn))"
                )
            }
            let credentials: AWSCredentials
            do {
                credentials = try await currentCredentials(operation: request.operation)
            } catch {
                breaker.recordNeutral()
                throw error
            }
            var headers = request.headers
            if endpoint.service == "s3" { headers.append(("x-amz-content-sha256", payloadHash)) }
            let signedHeaders = signer.sign(
                .init(method: request.method, host: endpoint.host, path: request.path, query: request.query, headers: headers),
                payloadHash: payloadHash, credentials: credentials, at: clock.now()
            )
            let url = endpoint.url + request.path + (request.query.isEmpty ? "" : "?" + request.query)
            let signed = HTTPRequest(
                method: request.method, url: url, headers: signedHeaders, body: request.body, timeout: settings.timeout,
                connectTimeout: settings.connectTimeout, idleTimeout: settings.idleTimeout
            )
            let started = ContinuousClock.now
            let failure: AWSError
            do {
                switch try await exchange(http, signed) {
                case .success(let value):
                    breaker.recordSuccess()
                    budget.succeeded(refund: lastRetryCost)
                    log(request, attempt: attempt, started: started, status: "ok")
                    return value
                case .failure(let response):
                    failure = AWSError.parse(service: endpoint.service, operation: request.operation, response: response)
                    if response.status >= 500 { breaker.recordFailure() } else { breaker.recordSuccess() }
                }
            } catch let error as HTTPClientError {
                if Task.isCancelled {
                    breaker.recordNeutral()
                    throw CancellationError()
                }
                breaker.recordFailure()
                let code = switch error.kind {
                case .connect: "ConnectFailed"
                case .timeout: "Timeout"
                case .transfer: "TransferFailed"
                }
                failure = AWSError(kind: .transport, service: endpoint.service, operation: request.operation, code: code, message: error.reason)
            } catch {
                breaker.recordNeutral()
                throw error
            }
            log(request, attempt: attempt, started: started, status: failure.code)
            guard attempt < settings.retry.maximumAttempts, let reason = RetryPolicy.classify(failure, idempotent: request.idempotent) else {
                throw failure
            }
            guard let cost = budget.acquire(for: reason) else {
                var exhausted = failure
                exhausted.message += exhausted.message.isEmpty ? "retry budget exhausted" : " (retry budget exhausted)"
                throw exhausted
            }
            lastRetryCost = cost
            guard let delay = settings.retry.delay(after: attempt, reason, retryAfter: failure.retryAfter) else { throw failure }
            try await settings.sleep(delay)
        }
    }

    private func currentCredentials(operation: String) async throws -> AWSCredentials {
        do {
            return try await credentials.credentials()
        } catch let error as AWSCredentialsError {
            throw AWSError(kind: .credentials, service: endpoint.service, operation: operation, code: "NoCredentials", message: error.message)
        }
    }

    private func log(_ request: Request, attempt: Int, started: ContinuousClock.Instant, status: String) {
        guard logger.logLevel <= .debug else { return }
        let elapsed = ContinuousClock.now - started
        logger.debug("aws request", metadata: [
            "aws.service": "\(endpoint.service)", "aws.operation": "\(request.operation)", "http.method": "\(request.method)",
            "http.path": "\(request.path)", "aws.attempt": "\(attempt)", "aws.outcome": "\(status)",
            "duration_ms": "\(Double(elapsed.components.attoseconds) / 1e15 + Double(elapsed.components.seconds) * 1000)",
        ])
    }

    static func seconds(_ duration: Duration) -> String {
        let ms = duration.components.seconds * 1000 + duration.components.attoseconds / 1_000_000_000_000_000
        return ms >= 1000 ? "\(ms / 1000) s" : "\(ms) ms"
    }
}
