internal import CCurl
import GatewayApplication
import NIOPosix

/// The `HTTPClient` port over libcurl. Each request is one easy handle performed on NIO's blocking thread
/// pool, with bounded connect and total timeouts (a key download without them hangs every request that waits
/// for it), no redirects, and only the http and https protocols.
public struct CurlHTTPClient: HTTPClient {
    private let pool: NIOThreadPool

    public init(pool: NIOThreadPool = .singleton) {
        self.pool = pool
    }

    /// `curl_global_init` is not thread-safe: run it once, before any handle.
    private static let initialized: Bool = curl_global_init(Int(CURL_GLOBAL_DEFAULT)) == CURLE_OK

    public func send(_ request: HTTPRequest) async throws -> HTTPResponse {
        guard Self.initialized else { throw HTTPClientError(url: request.url, reason: "libcurl did not initialize") }
        return try await pool.runIfActive { try Self.perform(request) }
    }

    private static func perform(_ request: HTTPRequest) throws -> HTTPResponse {
        guard let handle = curl_easy_init() else { throw HTTPClientError(url: request.url, reason: "curl_easy_init failed") }
        defer { curl_easy_cleanup(handle) }
        let collector = Collector(maximumBody: 64 << 20)
        let context = Unmanaged.passUnretained(collector).toOpaque()
        var headerList: UnsafeMutablePointer<curl_slist>?
        defer { curl_slist_free_all(headerList) }
        for (name, value) in request.headers {
            headerList = curl_slist_append(headerList, "\(name): \(value)")
        }
        try withExtendedLifetime(collector) {
            try check(CCurl_easy_setopt_pointer(handle, CURLOPT_URL, request.url), request)
            try check(CCurl_easy_setopt_pointer(handle, CURLOPT_PROTOCOLS_STR, "http,https"), request)
            try check(CCurl_easy_setopt_long(handle, CURLOPT_NOSIGNAL, 1), request)
            try check(CCurl_easy_setopt_long(handle, CURLOPT_FOLLOWLOCATION, 0), request)
            try check(CCurl_easy_setopt_long(handle, CURLOPT_TIMEOUT_MS, milliseconds(request.timeout)), request)
            try check(CCurl_easy_setopt_long(handle, CURLOPT_CONNECTTIMEOUT_MS, milliseconds(request.connectTimeout)), request)
            try check(CCurl_easy_setopt_pointer(handle, CURLOPT_HTTPHEADER, headerList), request)
            try check(CCurl_easy_setopt_write_callback(handle, onBody), request)
            try check(CCurl_easy_setopt_pointer(handle, CURLOPT_WRITEDATA, context), request)
            try check(CCurl_easy_setopt_header_callback(handle, onHeader), request)
            try check(CCurl_easy_setopt_pointer(handle, CURLOPT_HEADERDATA, context), request)
            if request.method == "GET" && request.body.isEmpty {
                try check(CCurl_easy_setopt_long(handle, CURLOPT_HTTPGET, 1), request)
            } else {
                try check(CCurl_easy_setopt_pointer(handle, CURLOPT_CUSTOMREQUEST, request.method), request)
                if !request.body.isEmpty || request.method == "POST" || request.method == "PUT" {
                    try check(CCurl_easy_setopt_int64(handle, CURLOPT_POSTFIELDSIZE_LARGE, curl_off_t(request.body.count)), request)
                    try request.body.withUnsafeBytes { body in
                        // COPYPOSTFIELDS copies now, so the buffer need not outlive this call.
                        try check(CCurl_easy_setopt_pointer(handle, CURLOPT_COPYPOSTFIELDS, body.baseAddress ?? UnsafeRawPointer(bitPattern: 1)), request)
                    }
                }
            }
            let result = curl_easy_perform(handle)
            guard result == CURLE_OK else {
                throw HTTPClientError(url: request.url, reason: String(cString: curl_easy_strerror(result)))
            }
        }
        var status = 0
        _ = CCurl_easy_getinfo_long(handle, CURLINFO_RESPONSE_CODE, &status)
        return HTTPResponse(status: status, headers: collector.headers, body: collector.body)
    }

    private static func check(_ code: CURLcode, _ request: HTTPRequest) throws {
        guard code == CURLE_OK else {
            throw HTTPClientError(url: request.url, reason: String(cString: curl_easy_strerror(code)))
        }
    }

    private static func milliseconds(_ d: Duration) -> Int {
        Int(d.components.seconds) * 1000 + Int(d.components.attoseconds / 1_000_000_000_000_000)
    }
}

/// Collects what libcurl hands its callbacks (passed to them as `userdata`).
private final class Collector {
    var body: [UInt8] = []
    var headers: [(name: String, value: String)] = []
    let maximumBody: Int

    init(maximumBody: Int) {
        self.maximumBody = maximumBody
    }

    /// Returns the number of bytes taken; anything else makes libcurl abort with CURLE_WRITE_ERROR.
    func appendBody(_ bytes: UnsafeRawBufferPointer) -> Int {
        guard body.count + bytes.count <= maximumBody else { return 0 }
        body.append(contentsOf: bytes)
        return bytes.count
    }

    /// One header line as libcurl delivers it, CRLF included. Each status line starts a new header block
    /// (after a `100 Continue`, or a proxy's reply), so only the final response's headers are kept.
    func appendHeaderLine(_ bytes: UnsafeRawBufferPointer) {
        let line = String(decoding: bytes, as: UTF8.self)
        if line.hasPrefix("HTTP/") {
            headers.removeAll()
            return
        }
        guard let colon = line.firstIndex(of: ":") else { return }
        let name = line[..<colon].lowercased()
        let isSpace: (Character) -> Bool = { $0 == " " || $0 == "\t" || $0 == "\r\n" || $0 == "\r" || $0 == "\n" }
        let value = String(line[line.index(after: colon)...].drop(while: isSpace).reversed().drop(while: isSpace).reversed())
        headers.append((name, value))
    }
}

private func onBody(_ data: UnsafeMutablePointer<CChar>?, _ size: Int, _ count: Int, _ userdata: UnsafeMutableRawPointer?) -> Int {
    let collector = Unmanaged<Collector>.fromOpaque(userdata!).takeUnretainedValue()
    return collector.appendBody(UnsafeRawBufferPointer(start: data, count: size * count))
}

private func onHeader(_ data: UnsafeMutablePointer<CChar>?, _ size: Int, _ count: Int, _ userdata: UnsafeMutableRawPointer?) -> Int {
    let collector = Unmanaged<Collector>.fromOpaque(userdata!).takeUnretainedValue()
    collector.appendHeaderLine(UnsafeRawBufferPointer(start: data, count: size * count))
    return size * count
}
