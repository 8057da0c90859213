import GatewayApplication
import Synchronization

/// An HTTP client that answers from a script and records what it was sent: for the retry, breaker and
/// protocol tests that need replies no real server gives on demand (a 503 on the second try, a partial batch).
final class ScriptedHTTP: HTTPClient {
    enum Reply: Sendable {
        case status(Int, headers: [(name: String, value: String)] = [], body: String = "")
        case failure(HTTPClientError.Kind)
    }

    private let script: Mutex<[Reply]>
    private let fallback: Reply
    private let sent = Mutex<[HTTPRequest]>([])

    /// Answers with `script` in order, then with `fallback` forever.
    init(_ script: [Reply], then fallback: Reply = .status(200, body: "{}")) {
        self.script = Mutex(script)
        self.fallback = fallback
    }

    var requests: [HTTPRequest] { sent.withLock { $0 } }

    func send(_ request: HTTPRequest) async throws -> HTTPResponse {
        sent.withLock { $0.append(request) }
        let reply = script.withLock { $0.isEmpty ? fallback : $0.removeFirst() }
        switch reply {
        case .status(let status, let headers, let body):
            return HTTPResponse(status: status, headers: headers.map { ($0.name.lowercased(), $0.value) }, body: Array(body.utf8))
        case .failure(let kind):
            throw HTTPClientError(url: request.url, reason: "scripted \(kind)", kind: kind)
        }
    }
}

extension HTTPRequest {
    func header(_ name: String) -> String? {
        headers.first { $0.name.lowercased() == name.lowercased() }?.value
    }

    var bodyText: String { String(decoding: body, as: UTF8.self) }
}
