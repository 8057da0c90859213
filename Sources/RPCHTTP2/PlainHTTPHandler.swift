import Synchronization

/// Answers the plain HTTP `GET`/`HEAD` requests that arrive on the gRPC listener (for example signed download
/// links), so one port serves both. Everything else on the listener is gRPC.
public protocol PlainHTTPHandler: Sendable {
    func respond(to request: PlainHTTPRequest) async -> PlainHTTPResponse
}

public struct PlainHTTPRequest: Sendable {
    /// `GET` or `HEAD`.
    public var method: String
    /// The `:path`, query included.
    public var path: String
    public var headers: [(name: String, value: String)]
}

public struct PlainHTTPResponse: Sendable {
    public var status: Int
    public var headers: [(name: String, value: String)]
    /// Pulled chunk by chunk as the peer's flow-control window allows; nil for no body. Not read for `HEAD`.
    public var body: (@Sendable () async throws -> [UInt8]?)?

    public init(status: Int, headers: [(name: String, value: String)] = [], body: (@Sendable () async throws -> [UInt8]?)? = nil) {
        self.status = status
        self.headers = headers
        self.body = body
    }

    /// A short text response, e.g. for 403 and 404.
    public static func text(_ status: Int, _ message: String) -> PlainHTTPResponse {
        let bytes = Array((message + "\n").utf8)
        let sent = ManagedFlag()
        return PlainHTTPResponse(
            status: status, headers: [("content-type", "text/plain; charset=utf-8"), ("content-length", "\(bytes.count)")],
            body: { sent.setOnce() ? bytes : nil }
        )
    }
}

/// True the first time only.
final class ManagedFlag: Sendable {
    private let value = Mutex(false)
    func setOnce() -> Bool { value.withLock { was in defer { was = true }; return !was } }
}
