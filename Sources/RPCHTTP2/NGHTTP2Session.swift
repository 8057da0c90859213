internal import CNGHTTP2

/// What an ``NGHTTP2Session`` reports. All calls happen inside ``NGHTTP2Session/receive(_:)`` or
/// ``NGHTTP2Session/send(_:)``, on the connection's event loop; a delegate may submit frames to the session
/// but must not call `receive` or `send` (nghttp2 is not re-entrant; the session checks).
protocol NGHTTP2SessionDelegate: AnyObject {
    /// A HEADERS frame starts: request headers (server), response headers or trailers (client).
    func beginHeaders(stream: Int32)
    /// One header field, and what to do with the rest of its block.
    func header(stream: Int32, name: UnsafeRawBufferPointer, value: UnsafeRawBufferPointer) -> HeaderVerdict
    /// The header block is complete; `endStream` when it also ends the peer's side of the stream.
    func headersComplete(stream: Int32, endStream: Bool)
    /// DATA payload bytes, valid only during the call.
    func data(stream: Int32, bytes: UnsafeRawBufferPointer)
    /// END_STREAM on a DATA frame.
    func dataEnded(stream: Int32)
    /// The stream is closed (both sides done, or reset); `errorCode` is the RST_STREAM code, or 0.
    func streamClosed(stream: Int32, errorCode: UInt32)
    /// A HEADERS frame with END_STREAM (trailers, or a trailers-only response) went out.
    func endStreamHeadersSent(stream: Int32)
    /// nghttp2 wants DATA for `stream`: fill `buffer` (its size is what flow control allows).
    func readData(stream: Int32, into buffer: UnsafeMutableRawBufferPointer) -> NGHTTP2Session.DataReadResult
    /// GOAWAY from the peer.
    func goAwayReceived(lastStreamID: Int32, errorCode: UInt32)
    /// The ACK of a PING we sent.
    func pingAckReceived(opaqueData: UInt64)
    /// A PING from the peer (nghttp2 answers it).
    func pingReceived()
}

/// What a delegate makes of a header field.
enum HeaderVerdict {
    case accept
    /// Reset the stream (with the code from ``NGHTTP2Session/resetStream(_:code:)`` if the delegate submitted
    /// one, INTERNAL_ERROR otherwise); nghttp2 decodes the rest of the block without calling back.
    case refuseStream
    /// End the connection now (GOAWAY ENHANCE_YOUR_CALM), without decoding the rest of the block.
    case abortConnection
}

/// One HTTP/2 connection's libnghttp2 session, driven sans-I/O: bytes in through ``receive(_:)``, bytes out
/// through ``send(_:)``. Owned by one connection handler and used on its event loop only.
final class NGHTTP2Session {
    enum Role { case server, client }

    enum DataReadResult {
        /// Bytes copied into the buffer; more may follow.
        case bytes(Int)
        /// Nothing to send now: nghttp2 waits for ``resumeData(stream:)``.
        case deferred
        /// The last bytes of the body. With `trailers` the stream ends with a HEADERS frame carrying them
        /// (a server's response); without, with END_STREAM on this DATA frame (a client's request).
        case end(Int, trailers: [(String, String)]?)
    }

    struct Error: Swift.Error, CustomStringConvertible {
        var code: Int32
        var description: String { "nghttp2: " + String(cString: nghttp2_strerror(code)) }
    }

    struct Settings: Sendable {
        var maxConcurrentStreams: UInt32 = 1000
        var initialWindowSize: UInt32 = 1 << 20
        /// The connection window, raised from HTTP/2's 65,535 at start.
        var connectionWindowSize: Int32 = 16 << 20
        var maxHeaderListSize: UInt32 = 16 << 10
    }

    /// HTTP/2 error codes (RFC 9113 §7).
    enum ErrorCode: UInt32 {
        case noError = 0, protocolError = 1, internalError = 2, flowControlError = 3, settingsTimeout = 4
        case streamClosed = 5, frameSizeError = 6, refusedStream = 7, cancel = 8, compressionError = 9
        case connectError = 10, enhanceYourCalm = 11, inadequateSecurity = 12, http11Required = 13
    }

    private var session: OpaquePointer!
    private unowned(unsafe) let delegate: any NGHTTP2SessionDelegate
    /// True while nghttp2 runs our callbacks, which must not re-enter `receive` or `send`.
    private(set) var inCallback = false

    init(role: Role, settings: Settings, delegate: any NGHTTP2SessionDelegate) throws {
        self.delegate = delegate
        var callbacks: OpaquePointer?
        nghttp2_session_callbacks_new(&callbacks)
        defer { nghttp2_session_callbacks_del(callbacks) }
        nghttp2_session_callbacks_set_on_begin_headers_callback(callbacks, onBeginHeaders)
        nghttp2_session_callbacks_set_on_header_callback(callbacks, onHeader)
        nghttp2_session_callbacks_set_on_frame_recv_callback(callbacks, onFrameRecv)
        nghttp2_session_callbacks_set_on_data_chunk_recv_callback(callbacks, onDataChunkRecv)
        nghttp2_session_callbacks_set_on_stream_close_callback(callbacks, onStreamClose)
        nghttp2_session_callbacks_set_on_frame_send_callback(callbacks, onFrameSend)

        var option: OpaquePointer?
        nghttp2_option_new(&option)
        defer { nghttp2_option_del(option) }
        // Backpressure: WINDOW_UPDATE only for what the application consumed (`consume(stream:bytes:)`).
        nghttp2_option_set_no_auto_window_update(option, 1)

        var pointer: OpaquePointer?
        let user = Unmanaged.passUnretained(self).toOpaque()
        let rv = role == .server
            ? nghttp2_session_server_new2(&pointer, callbacks, user, option)
            : nghttp2_session_client_new2(&pointer, callbacks, user, option)
        guard rv == 0, let pointer else { throw Error(code: rv) }
        session = pointer

        var entries = [
            nghttp2_settings_entry(settings_id: Int32(NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS.rawValue),
                                   value: settings.maxConcurrentStreams),
            nghttp2_settings_entry(settings_id: Int32(NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE.rawValue),
                                   value: settings.initialWindowSize),
            nghttp2_settings_entry(settings_id: Int32(NGHTTP2_SETTINGS_MAX_HEADER_LIST_SIZE.rawValue),
                                   value: settings.maxHeaderListSize),
            // Not SETTINGS_NO_RFC7540_PRIORITIES (RFC 9218 §2.1), as nghttpd does not send it by default: with it,
            // nghttp2 keeps no closed streams (`nghttp2_session_close_stream`), so DATA or HEADERS on a closed
            // stream is silently ignored instead of STREAM_CLOSED (RFC 9113 §5.1), and it skips PRIORITY frames
            // altogether, so one on stream 0 or depending on itself is no PROTOCOL_ERROR (§6.3, §5.3.1). The cost:
            // nghttp2 keeps up to MAX_CONCURRENT_STREAMS closed streams (~240 bytes each) per connection.
        ]
        if role == .client { entries.removeFirst() }
        try check(nghttp2_submit_settings(session, UInt8(NGHTTP2_FLAG_NONE.rawValue), &entries, entries.count))
        try check(nghttp2_session_set_local_window_size(
            session, UInt8(NGHTTP2_FLAG_NONE.rawValue), 0, settings.connectionWindowSize))
    }

    deinit {
        nghttp2_session_del(session)
    }

    // MARK: I/O

    /// Parses `bytes`; the delegate hears about everything in them before this returns.
    func receive(_ bytes: UnsafeRawBufferPointer) throws {
        precondition(!inCallback, "nghttp2 re-entered from its own callback")
        inCallback = true
        defer { inCallback = false }
        let n = nghttp2_session_mem_recv(session, bytes.baseAddress?.assumingMemoryBound(to: UInt8.self), bytes.count)
        if n < 0 { throw Error(code: Int32(n)) }
    }

    /// Serializes every pending frame, handing the bytes to `write` in the chunks nghttp2 produces.
    func send(_ write: (UnsafeRawBufferPointer) -> Void) throws {
        precondition(!inCallback, "nghttp2 re-entered from its own callback")
        inCallback = true
        defer { inCallback = false }
        while true {
            var data: UnsafePointer<UInt8>?
            let n = nghttp2_session_mem_send(session, &data)
            if n < 0 { throw Error(code: Int32(n)) }
            if n == 0 { return }
            write(UnsafeRawBufferPointer(start: data, count: n))
        }
    }

    /// The peer's connection preface is complete: its first SETTINGS frame arrived.
    private(set) var receivedSettings = false

    var wantsRead: Bool { nghttp2_session_want_read(session) != 0 }
    var wantsWrite: Bool { nghttp2_session_want_write(session) != 0 }
    var lastProcessedStreamID: Int32 { nghttp2_session_get_last_proc_stream_id(session) }

    // MARK: Frames

    /// Response (server) or request (client) headers; with `body` the stream continues with DATA read
    /// through the delegate, without it the headers end the stream.
    func submitHeaders(stream: Int32, _ headers: [(String, String)], body: Bool) throws {
        try withHeaderFields(headers) { nva, count in
            if body {
                var provider = nghttp2_data_provider(source: nghttp2_data_source(ptr: nil), read_callback: onDataRead)
                return nghttp2_submit_response(session, stream, nva, count, &provider)
            }
            return nghttp2_submit_response(session, stream, nva, count, nil)
        }
    }

    /// A client's request: returns the new stream's id.
    func submitRequest(_ headers: [(String, String)]) throws -> Int32 {
        var provider = nghttp2_data_provider(source: nghttp2_data_source(ptr: nil), read_callback: onDataRead)
        var stream: Int32 = 0
        try withHeaderFields(headers) { nva, count in
            stream = nghttp2_submit_request(session, nil, nva, count, &provider, nil)
            return stream < 0 ? stream : 0
        }
        return stream
    }

    /// Trailers after the response body (call from `readData` when it returns `.end`, or after it).
    func submitTrailers(stream: Int32, _ headers: [(String, String)]) throws {
        try withHeaderFields(headers) { nva, count in nghttp2_submit_trailer(session, stream, nva, count) }
    }

    func resumeData(stream: Int32) {
        nghttp2_session_resume_data(session, stream)
    }

    /// Tells nghttp2 the application consumed `bytes` of the stream's DATA, so the windows may reopen.
    func consume(stream: Int32, bytes: Int) {
        guard bytes > 0 else { return }
        // nghttp2 credits the connection window first, and then the stream's if the stream still exists: a
        // stream already gone needs no other call (a second one would credit the connection twice).
        nghttp2_session_consume(session, stream, bytes)
    }

    func resetStream(_ stream: Int32, code: ErrorCode) {
        nghttp2_submit_rst_stream(session, UInt8(NGHTTP2_FLAG_NONE.rawValue), stream, code.rawValue)
    }

    /// The first GOAWAY of a graceful shutdown (last stream id 2^31-1), followed by a PING.
    func submitShutdownNotice() {
        nghttp2_submit_shutdown_notice(session)
    }

    func submitGoAway(lastStreamID: Int32, code: ErrorCode, debugData: String = "") {
        var debug = Array(debugData.utf8)
        nghttp2_submit_goaway(session, UInt8(NGHTTP2_FLAG_NONE.rawValue), lastStreamID, code.rawValue, &debug, debug.count)
    }

    func submitPing(opaqueData: UInt64) {
        var data = opaqueData.bigEndian
        withUnsafeBytes(of: &data) {
            _ = nghttp2_submit_ping(session, UInt8(NGHTTP2_FLAG_NONE.rawValue), $0.baseAddress?.assumingMemoryBound(to: UInt8.self))
        }
    }

    private func check(_ rv: Int32) throws {
        if rv != 0 { throw Error(code: rv) }
    }

    /// Lays the header fields out as nghttp2 name-value pairs (nghttp2 copies them before returning), in
    /// temporary storage (on the stack for a response's few fields: this ran twice per call, and its three
    /// arrays were six of a unary call's allocations).
    private func withHeaderFields(
        _ headers: [(String, String)],
        _ body: (UnsafeMutablePointer<nghttp2_nv>, Int) -> Int32
    ) throws {
        let size = headers.reduce(0) { $0 + $1.0.utf8.count + $1.1.utf8.count }
        let rv = withUnsafeTemporaryAllocation(of: UInt8.self, capacity: max(size, 1)) { bytes in
            withUnsafeTemporaryAllocation(of: nghttp2_nv.self, capacity: max(headers.count, 1)) { nva in
                var offset = 0
                func place(_ text: String) -> (UnsafeMutablePointer<UInt8>, Int) {
                    let start = bytes.baseAddress! + offset
                    let (_, end) = UnsafeMutableBufferPointer(rebasing: bytes[offset...]).initialize(from: text.utf8)
                    offset += end
                    return (start, end)
                }
                for (index, (name, value)) in headers.enumerated() {
                    let (namePointer, nameLength) = place(name)
                    let (valuePointer, valueLength) = place(value)
                    (nva.baseAddress! + index).initialize(to: nghttp2_nv(
                        name: namePointer, value: valuePointer, namelen: nameLength, valuelen: valueLength,
                        flags: UInt8(NGHTTP2_NV_FLAG_NONE.rawValue)
                    ))
                }
                return body(nva.baseAddress!, headers.count)
            }
        }
        try check(rv)
    }

    // MARK: Callbacks

    fileprivate static func from(_ user: UnsafeMutableRawPointer?) -> NGHTTP2Session {
        Unmanaged<NGHTTP2Session>.fromOpaque(user!).takeUnretainedValue()
    }

    fileprivate func frameReceived(_ frame: UnsafePointer<nghttp2_frame>) {
        let hd = frame.pointee.hd
        let endStream = hd.flags & UInt8(NGHTTP2_FLAG_END_STREAM.rawValue) != 0
        switch Int(hd.type) {
        case Int(NGHTTP2_SETTINGS.rawValue):
            // The first one ends the peer's connection preface (RFC 9113 §3.4).
            receivedSettings = true
        case Int(NGHTTP2_HEADERS.rawValue):
            delegate.headersComplete(stream: hd.stream_id, endStream: endStream)
        case Int(NGHTTP2_DATA.rawValue):
            if endStream { delegate.dataEnded(stream: hd.stream_id) }
        case Int(NGHTTP2_GOAWAY.rawValue):
            delegate.goAwayReceived(lastStreamID: frame.pointee.goaway.last_stream_id, errorCode: frame.pointee.goaway.error_code)
        case Int(NGHTTP2_PING.rawValue):
            let data = withUnsafeBytes(of: frame.pointee.ping.opaque_data) { $0.loadUnaligned(as: UInt64.self) }
            if hd.flags & UInt8(NGHTTP2_FLAG_ACK.rawValue) != 0 {
                delegate.pingAckReceived(opaqueData: UInt64(bigEndian: data))
            } else {
                delegate.pingReceived()
            }
        default:
            break
        }
    }

    fileprivate func frameSent(_ frame: UnsafePointer<nghttp2_frame>) {
        let hd = frame.pointee.hd
        if Int(hd.type) == Int(NGHTTP2_HEADERS.rawValue), hd.flags & UInt8(NGHTTP2_FLAG_END_STREAM.rawValue) != 0 {
            delegate.endStreamHeadersSent(stream: hd.stream_id)
        }
    }

    fileprivate func read(
        stream: Int32, buffer: UnsafeMutablePointer<UInt8>, length: Int, flags: UnsafeMutablePointer<UInt32>
    ) -> Int {
        switch delegate.readData(stream: stream, into: UnsafeMutableRawBufferPointer(start: buffer, count: length)) {
        case .bytes(let n):
            return n
        case .deferred:
            return Int(NGHTTP2_ERR_DEFERRED.rawValue)
        case .end(let n, let trailers):
            flags.pointee |= NGHTTP2_DATA_FLAG_EOF.rawValue
            if let trailers {
                flags.pointee |= NGHTTP2_DATA_FLAG_NO_END_STREAM.rawValue
                do {
                    try submitTrailers(stream: stream, trailers)
                } catch {
                    return Int(NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE.rawValue)
                }
            }
            return n
        }
    }

    fileprivate var delegateForCallbacks: any NGHTTP2SessionDelegate { delegate }
}

// C callbacks: free functions, `user_data` is the session. They never throw into C: a failure resets the
// stream (NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE) rather than the connection.

private func onBeginHeaders(
    _ session: OpaquePointer?, _ frame: UnsafePointer<nghttp2_frame>?, _ user: UnsafeMutableRawPointer?
) -> Int32 {
    NGHTTP2Session.from(user).delegateForCallbacks.beginHeaders(stream: frame!.pointee.hd.stream_id)
    return 0
}

private func onHeader(
    _ session: OpaquePointer?, _ frame: UnsafePointer<nghttp2_frame>?,
    _ name: UnsafePointer<UInt8>?, _ nameLength: Int, _ value: UnsafePointer<UInt8>?, _ valueLength: Int,
    _ flags: UInt8, _ user: UnsafeMutableRawPointer?
) -> Int32 {
    let verdict = NGHTTP2Session.from(user).delegateForCallbacks.header(
        stream: frame!.pointee.hd.stream_id,
        name: UnsafeRawBufferPointer(start: name, count: nameLength),
        value: UnsafeRawBufferPointer(start: value, count: valueLength)
    )
    switch verdict {
    case .accept:
        return 0
    case .refuseStream:
        return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE.rawValue
    case .abortConnection:
        // GOAWAY first; the callback failure then makes nghttp2_session_mem_recv stop at once and fail.
        nghttp2_session_terminate_session(session, NGHTTP2_ENHANCE_YOUR_CALM.rawValue)
        return NGHTTP2_ERR_CALLBACK_FAILURE.rawValue
    }
}

private func onFrameRecv(
    _ session: OpaquePointer?, _ frame: UnsafePointer<nghttp2_frame>?, _ user: UnsafeMutableRawPointer?
) -> Int32 {
    NGHTTP2Session.from(user).frameReceived(frame!)
    return 0
}

private func onDataChunkRecv(
    _ session: OpaquePointer?, _ flags: UInt8, _ stream: Int32, _ data: UnsafePointer<UInt8>?, _ length: Int,
    _ user: UnsafeMutableRawPointer?
) -> Int32 {
    NGHTTP2Session.from(user).delegateForCallbacks.data(stream: stream, bytes: UnsafeRawBufferPointer(start: data, count: length))
    return 0
}

private func onStreamClose(
    _ session: OpaquePointer?, _ stream: Int32, _ errorCode: UInt32, _ user: UnsafeMutableRawPointer?
) -> Int32 {
    NGHTTP2Session.from(user).delegateForCallbacks.streamClosed(stream: stream, errorCode: errorCode)
    return 0
}

private func onFrameSend(
    _ session: OpaquePointer?, _ frame: UnsafePointer<nghttp2_frame>?, _ user: UnsafeMutableRawPointer?
) -> Int32 {
    NGHTTP2Session.from(user).frameSent(frame!)
    return 0
}

private func onDataRead(
    _ session: OpaquePointer?, _ stream: Int32, _ buffer: UnsafeMutablePointer<UInt8>?, _ length: Int,
    _ flags: UnsafeMutablePointer<UInt32>?, _ source: UnsafeMutablePointer<nghttp2_data_source>?,
    _ user: UnsafeMutableRawPointer?
) -> Int {
    NGHTTP2Session.from(user).read(stream: stream, buffer: buffer!, length: length, flags: flags!)
}
