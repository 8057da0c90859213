import Synchronization

/// Outbound HTTP (key documents, AWS, webhooks). The adapter is libcurl.
public protocol HTTPClient: Sendable {
    /// Sends a request whose body is in memory and returns the whole response.
    func send(_ request: HTTPRequest) async throws -> HTTPResponse

    /// Sends `request` with its body pulled from `body` (when given, instead of `request.body`) and returns as
    /// soon as the response head is in: the body arrives through the returned stream as the caller reads it.
    /// Neither body is ever held whole in memory, so a 1 GiB object passes through in bounded space.
    func stream(_ request: HTTPRequest, body: HTTPBodySource?) async throws -> HTTPStreamingResponse
}

extension HTTPClient {
    /// For clients that only buffer (test doubles): collects the request body, sends it, and hands the response
    /// body over in one piece.
    public func stream(_ request: HTTPRequest, body: HTTPBodySource?) async throws -> HTTPStreamingResponse {
        var request = request
        if let body {
            var bytes: [UInt8] = []
            while let chunk = try await body.next() { bytes += chunk }
            request.body = bytes
        }
        let response = try await send(request)
        let remaining = Once(response.body)
        return HTTPStreamingResponse(status: response.status, headers: response.headers, body: HTTPBodySource(length: Int64(response.body.count)) {
            remaining.take()
        })
    }
}

public struct HTTPRequest: Sendable {
    public var method: String
    public var url: String
    public var headers: [(name: String, value: String)]
    public var body: [UInt8]
    /// The whole exchange, connect included; nil for streams, which may last as long as their reader takes
    /// (they end instead when no byte moves for `idleTimeout` while the reader is waiting).
    public var timeout: Duration?
    public var connectTimeout: Duration
    /// A stream that makes no progress for this long is abandoned (not counting time the reader is not reading).
    public var idleTimeout: Duration

    public init(
        method: String = "GET", url: String, headers: [(name: String, value: String)] = [], body: [UInt8] = [],
        timeout: Duration? = .seconds(10), connectTimeout: Duration = .seconds(3), idleTimeout: Duration = .seconds(30)
    ) {
        self.method = method
        self.url = url
        self.headers = headers
        self.body = body
        self.timeout = timeout
        self.connectTimeout = connectTimeout
        self.idleTimeout = idleTimeout
    }
}

public struct HTTPResponse: Sendable {
    public var status: Int
    /// Names lower-cased.
    public var headers: [(name: String, value: String)]
    public var body: [UInt8]

    public init(status: Int, headers: [(name: String, value: String)], body: [UInt8]) {
        self.status = status
        self.headers = headers
        self.body = body
    }

    public func header(_ name: String) -> String? { value(of: name, in: headers) }
}

/// A response whose body is still arriving.
public struct HTTPStreamingResponse: Sendable {
    public var status: Int
    /// Names lower-cased.
    public var headers: [(name: String, value: String)]
    /// The body, chunk by chunk; reading stops the transfer from getting ahead of the reader. Call
    /// `cancel()` to give up on the rest.
    public var body: HTTPBodySource

    public init(status: Int, headers: [(name: String, value: String)], body: HTTPBodySource) {
        self.status = status
        self.headers = headers
        self.body = body
    }

    public func header(_ name: String) -> String? { value(of: name, in: headers) }

    /// Reads the rest of the body, refusing more than `limit` bytes.
    public func collect(upTo limit: Int) async throws -> [UInt8] {
        var bytes: [UInt8] = []
        while let chunk = try await body.next() {
            guard bytes.count + chunk.count <= limit else {
                body.cancel()
                throw HTTPClientError(url: "", reason: "the response body is larger than \(limit) bytes")
            }
            bytes += chunk
        }
        return bytes
    }
}

/// The value of the first header named `name` (compared without case) in a list of lower-cased names.
private func value(of name: String, in headers: [(name: String, value: String)]) -> String? {
    let name = name.lowercased()
    return headers.first { $0.name == name }?.value
}

/// Bytes pulled one chunk at a time: a request body the client reads as it sends, or a response body the
/// caller reads as it arrives.
public struct HTTPBodySource: Sendable {
    /// The total length when known (a request body without one is sent chunked).
    public var length: Int64?
    private let pull: @Sendable () async throws -> [UInt8]?
    private let stop: @Sendable () -> Void

    /// `next` returns the following chunk, or nil at the end; `cancel` is called when the reader gives up.
    public init(length: Int64?, cancel: @escaping @Sendable () -> Void = {}, next: @escaping @Sendable () async throws -> [UInt8]?) {
        self.length = length
        self.pull = next
        self.stop = cancel
    }

    /// The next chunk (never empty), or nil at the end.
    public func next() async throws -> [UInt8]? {
        while let chunk = try await pull() {
            if !chunk.isEmpty { return chunk }
        }
        return nil
    }

    /// Gives up on the rest: the transfer behind it ends.
    public func cancel() { stop() }

    /// `bytes` in one chunk.
    public static func bytes(_ bytes: [UInt8]) -> HTTPBodySource {
        let remaining = Once(bytes)
        return HTTPBodySource(length: Int64(bytes.count)) { remaining.take() }
    }
}

/// The request could not be completed (no connection, timeout, TLS failure), as opposed to a non-2xx reply.
public struct HTTPClientError: Error, Sendable, CustomStringConvertible {
    public enum Kind: Sendable, Hashable {
        /// No connection could be made (refused, unreachable, DNS): the request was never sent.
        case connect
        /// The exchange took too long or stalled (the request may have been received).
        case timeout
        /// Anything else (reset mid-exchange, protocol error): the request may have been received.
        case transfer
    }

    public var url: String
    public var reason: String
    public var kind: Kind

    public init(url: String, reason: String, kind: Kind = .transfer) {
        self.url = url
        self.reason = reason
        self.kind = kind
    }

    public var description: String { "HTTP request to \(url) failed: \(reason)" }
}

/// A value handed out once (the single chunk of a buffered body).
private final class Once: Sendable {
    private let value: Mutex<[UInt8]?>

    init(_ value: [UInt8]) { self.value = Mutex(value) }

    func take() -> [UInt8]? {
        value.withLock { value in
            defer { value = nil }
            return value
        }
    }
}
