import GatewayApplication

/// The `HTTPClient` port over libcurl's multi interface (see ``CurlMulti``): one thread per client drives
/// every transfer, connections are reused (keep-alive, and HTTP/2 multiplexing where the server offers it over
/// TLS), bodies stream both ways with backpressure, and every request has bounded connect, total (or, for
/// streams, idle) timeouts. No redirects are followed and only http and https are spoken.
public final class CurlHTTPClient: HTTPClient {
    public struct Configuration: Sendable {
        /// A buffered response larger than this is refused (`send`); streams have no limit.
        public var maximumBufferedBody = 64 << 20
        /// Bytes of a body buffered ahead of its reader or of curl.
        public var streamBuffer = 1 << 20
        public var maximumCachedConnections = 64
        public var maximumConnectionsPerHost = 64

        public static var defaults: Configuration { Configuration() }
    }

    private let multi: CurlMulti
    private let configuration: Configuration

    public init(configuration: Configuration = .defaults) {
        self.configuration = configuration
        do {
            multi = try CurlMulti(configuration: .init(
                highWater: configuration.streamBuffer, maximumCachedConnections: configuration.maximumCachedConnections,
                maximumConnectionsPerHost: configuration.maximumConnectionsPerHost
            ))
        } catch {
            // curl_global_init or curl_multi_init fail only when memory runs out.
            fatalError("\(error)")
        }
    }

    deinit {
        multi.stop()
    }

    /// TCP (or TLS) connections opened so far; fewer than requests sent means connections were reused.
    public var connectionsOpened: Int { multi.connectionsOpened }

    public func send(_ request: HTTPRequest) async throws -> HTTPResponse {
        let response = try await stream(request, body: nil)
        do {
            let body = try await response.collect(upTo: configuration.maximumBufferedBody)
            return HTTPResponse(status: response.status, headers: response.headers, body: body)
        } catch let error as HTTPClientError where error.url.isEmpty {
            throw HTTPClientError(url: request.url, reason: error.reason, kind: error.kind)
        }
    }

    public func stream(_ request: HTTPRequest, body: HTTPBodySource?) async throws -> HTTPStreamingResponse {
        let transfer = CurlTransfer(request: request, hasBodySource: body != nil, highWater: configuration.streamBuffer)
        transfer.uploadLength = body?.length
        let multi = self.multi
        let resume: @Sendable () -> Void = { multi.submit(.resume(transfer)) }
        let producer = body.map { body in
            Task {
                do {
                    while let chunk = try await body.next() {
                        try await transfer.offer(chunk, resume: resume)
                    }
                    transfer.finishUpload(resume: resume)
                } catch {
                    multi.submit(.cancel(transfer, error as? HTTPClientError
                        ?? HTTPClientError(url: request.url, reason: "the request body failed: \(error)")))
                }
            }
        }
        let head: (Int, [(name: String, value: String)])
        do {
            head = try await withTaskCancellationHandler {
                try await withCheckedThrowingContinuation { continuation in
                    transfer.setHeadContinuation(continuation)
                    multi.submit(.add(transfer))
                }
            } onCancel: {
                multi.submit(.cancel(transfer, HTTPClientError(url: request.url, reason: "cancelled")))
            }
        } catch {
            producer?.cancel()
            throw error
        }
        let reader = BodyReader(transfer: transfer, multi: multi, producer: producer)
        let length = head.1.first { $0.name == "content-length" }.flatMap { Int64($0.value) }
        return HTTPStreamingResponse(
            status: head.0, headers: head.1,
            body: HTTPBodySource(length: request.method == "HEAD" ? 0 : length, cancel: { reader.cancel() }) {
                try await reader.next()
            }
        )
    }
}

/// Reads one response body; dropping it (every copy of the body source) before the end cancels the transfer,
/// so an abandoned download never pins a connection.
private final class BodyReader: Sendable {
    let transfer: CurlTransfer
    let multi: CurlMulti
    let producer: Task<Void, Never>?

    init(transfer: CurlTransfer, multi: CurlMulti, producer: Task<Void, Never>?) {
        self.transfer = transfer
        self.multi = multi
        self.producer = producer
    }

    func next() async throws -> [UInt8]? {
        let (transfer, multi) = (transfer, multi)
        return try await withTaskCancellationHandler {
            try await transfer.nextChunk { multi.submit(.resume(transfer)) }
        } onCancel: {
            multi.submit(.cancel(transfer, HTTPClientError(url: transfer.url, reason: "cancelled")))
        }
    }

    func cancel() {
        multi.submit(.cancel(transfer, HTTPClientError(url: transfer.url, reason: "cancelled by the reader")))
        producer?.cancel()
    }

    deinit {
        // Settled transfers ignore the cancel; one still running is stopped.
        multi.submit(.cancel(transfer, HTTPClientError(url: transfer.url, reason: "the response body was abandoned")))
        producer?.cancel()
    }
}
