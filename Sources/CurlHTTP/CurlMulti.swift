internal import CCurl
import Foundation
import GatewayApplication
import Synchronization

/// libcurl's multi interface driven from one thread of its own: every transfer of a client runs there, so
/// connections (and HTTP/2 sessions, where the server offers them) are kept alive and reused across requests,
/// and no thread blocks per request. Async callers talk to the thread through a command queue and
/// `curl_multi_wakeup`; the thread talks back by resuming continuations.
///
/// Bodies stream both ways with backpressure: a response body is paused (`CURL_WRITEFUNC_PAUSE`) while the
/// reader is `highWater` bytes behind, and a request body is paused (`CURL_READFUNC_PAUSE`) while its producer
/// has nothing ready. Only the curl thread touches easy handles.
final class CurlMulti: Sendable {
    struct Configuration: Sendable {
        /// Bytes of a response buffered ahead of its reader (and of a request body ahead of curl).
        var highWater = 1 << 20
        /// Connections kept open for reuse.
        var maximumCachedConnections = 64
        /// Concurrent connections to one host; more transfers wait for one to be free.
        var maximumConnectionsPerHost = 64
    }

    enum Command {
        case add(CurlTransfer)
        case resume(CurlTransfer)
        case cancel(CurlTransfer, HTTPClientError)
        case stop
    }

    // curl_multi_wakeup is the one call that may come from any thread; everything else runs on the curl thread.
    nonisolated(unsafe) private let multi: UnsafeMutableRawPointer
    private let commands = Mutex<[Command]>([])
    private let opened = Atomic<Int>(0)
    let configuration: Configuration

    /// `curl_global_init` is not thread-safe: run it once, before any handle.
    static let initialized: Bool = curl_global_init(Int(CURL_GLOBAL_DEFAULT)) == CURLE_OK

    init(configuration: Configuration) throws {
        guard Self.initialized, let multi = curl_multi_init() else {
            throw HTTPClientError(url: "", reason: "libcurl did not initialize")
        }
        self.multi = multi
        self.configuration = configuration
        _ = CCurl_multi_setopt_long(multi, CURLMOPT_MAXCONNECTS, configuration.maximumCachedConnections)
        _ = CCurl_multi_setopt_long(multi, CURLMOPT_MAX_HOST_CONNECTIONS, configuration.maximumConnectionsPerHost)
        _ = CCurl_multi_setopt_long(multi, CURLMOPT_PIPELINING, Int(CURLPIPE_MULTIPLEX))
        let thread = Thread { [self] in self.run() }
        thread.name = "curl-multi"
        thread.start()
    }

    /// TCP (or TLS) connections opened so far: fewer than requests means connections were reused.
    var connectionsOpened: Int { opened.load(ordering: .relaxed) }

    func submit(_ command: Command) {
        commands.withLock { $0.append(command) }
        curl_multi_wakeup(multi)
    }

    /// Ends the thread once the transfers under way have been cancelled.
    func stop() { submit(.stop) }

    deinit {
        curl_multi_cleanup(multi)
    }

    // MARK: The curl thread

    private func run() {
        var active: [UnsafeMutableRawPointer: CurlTransfer] = [:]
        var running: Int32 = 0
        while true {
            for command in commands.withLock({ commands in defer { commands = [] }; return commands }) {
                switch command {
                case .add(let transfer):
                    if transfer.isSettled { continue }
                    if let failure = transfer.start(in: multi) {
                        transfer.fail(failure)
                    } else {
                        active[transfer.key] = transfer
                    }
                case .resume(let transfer):
                    if active[transfer.key] != nil { transfer.unpause() }
                case .cancel(let transfer, let error):
                    if active.removeValue(forKey: transfer.key) != nil {
                        transfer.finish(in: multi, result: .failure(error))
                    } else {
                        transfer.markCancelled(error)
                    }
                case .stop:
                    for transfer in active.values {
                        transfer.finish(in: multi, result: .failure(HTTPClientError(url: transfer.url, reason: "the HTTP client was shut down")))
                    }
                    // The handle itself goes in deinit: response bodies still held may submit (and wake) after this.
                    return
                }
            }
            curl_multi_perform(multi, &running)
            var remaining: Int32 = 0
            while let message = curl_multi_info_read(multi, &remaining) {
                guard message.pointee.msg == CURLMSG_DONE, let easy = message.pointee.easy_handle else { continue }
                let code = message.pointee.data.result
                guard let transfer = active.removeValue(forKey: easy) else { continue }
                opened.add(transfer.connectsUsed(), ordering: .relaxed)
                let result: Result<Void, HTTPClientError> = code == CURLE_OK ? .success(()) : .failure(transfer.error(for: code))
                transfer.finish(in: multi, result: result)
            }
            curl_multi_poll(multi, nil, 0, 1000, nil)
        }
    }
}

/// One request in flight: its easy handle (touched only on the curl thread) and the state it shares with the
/// tasks that wait for its head, read its body and feed its request body.
final class CurlTransfer: @unchecked Sendable {
    // Curl-thread-only: the handle, its header list and the callbacks' context. Everything the other threads
    // see is in `state`.
    private var easy: UnsafeMutableRawPointer?
    private var headerList: UnsafeMutablePointer<curl_slist>?
    private var recvPaused = false
    private var sendPaused = false
    let url: String
    private let request: HTTPRequest
    private let hasBodySource: Bool
    private let highWater: Int

    private struct State {
        var head: CheckedContinuation<(Int, [(name: String, value: String)]), any Error>?
        var headDelivered = false
        var headers: [(name: String, value: String)] = []
        var informational = false
        var status = 0

        var chunks: [[UInt8]] = []
        var chunkIndex = 0
        var buffered = 0
        var reader: CheckedContinuation<[UInt8]?, any Error>?
        var result: Result<Void, HTTPClientError>?
        /// The reader is behind: curl was told to pause and waits for a resume.
        var readerWantsResume = false

        var upload: [[UInt8]] = []
        var uploadOffset = 0
        var uploadBuffered = 0
        var uploadDone = false
        var uploadWantsResume = false
        var producer: CheckedContinuation<Void, any Error>?
    }

    private let state = Mutex(State())

    init(request: HTTPRequest, hasBodySource: Bool, highWater: Int) {
        self.request = request
        self.url = request.url
        self.hasBodySource = hasBodySource
        self.highWater = highWater
    }

    /// Identifies the transfer by its easy handle's address, once started; before that by its own.
    var key: UnsafeMutableRawPointer {
        easy ?? Unmanaged.passUnretained(self).toOpaque()
    }

    // MARK: Waiting (any task)

    func waitForHead(
        registering: @escaping (CheckedContinuation<(Int, [(name: String, value: String)]), any Error>) -> Void
    ) async throws -> (Int, [(name: String, value: String)]) {
        try await withCheckedThrowingContinuation { continuation in registering(continuation) }
    }

    func setHeadContinuation(_ continuation: CheckedContinuation<(Int, [(name: String, value: String)]), any Error>) {
        state.withLock { $0.head = continuation }
    }

    /// The next response chunk; nil at the end. Calls `resume` when curl, paused because the reader was
    /// behind, should go on.
    func nextChunk(resume: () -> Void) async throws -> [UInt8]? {
        if let ready = try take(resume: resume) { return ready }
        return try await withCheckedThrowingContinuation { continuation in
            do {
                if let ready = try take(resume: resume, orWait: continuation) { continuation.resume(returning: ready) }
            } catch {
                continuation.resume(throwing: error)
            }
        }
    }

    /// A buffered chunk (`chunk` nil: the end), or nil when there is none yet; with `orWait`, the continuation
    /// is then left for the curl thread to resume.
    private func take(
        resume: () -> Void, orWait waiter: CheckedContinuation<[UInt8]?, any Error>? = nil
    ) throws -> [UInt8]?? {
        let (taken, wantsResume): (Result<[UInt8]?, HTTPClientError>?, Bool) = state.withLock { state in
            if state.chunkIndex < state.chunks.count {
                let chunk = state.chunks[state.chunkIndex]
                state.chunkIndex += 1
                if state.chunkIndex == state.chunks.count {
                    state.chunks.removeAll(keepingCapacity: true)
                    state.chunkIndex = 0
                } else if state.chunkIndex >= 16, state.chunkIndex * 2 >= state.chunks.count {
                    // A reader that never catches up (curl always a chunk ahead) must still let go of what
                    // it took, or the queue holds the whole body (a 200 MiB download: 200 MiB).
                    state.chunks.removeFirst(state.chunkIndex)
                    state.chunkIndex = 0
                }
                state.buffered -= chunk.count
                let wantsResume = state.readerWantsResume && state.buffered <= highWater / 2
                if wantsResume { state.readerWantsResume = false }
                return (.success(chunk), wantsResume)
            }
            switch state.result {
            case .success?: return (.success(nil), false)
            case .failure(let error)?: return (.failure(error), false)
            case nil:
                state.reader = waiter
                return (nil, false)
            }
        }
        if wantsResume { resume() }
        return try taken.map { try $0.get() }
    }

    /// Queues a chunk of the request body; waits while `highWater` bytes are queued. Tells `resume` when curl
    /// waits for data.
    func offer(_ chunk: [UInt8], resume: () -> Void) async throws {
        let (wantsResume, failed): (Bool, HTTPClientError?) = state.withLock { state in
            if case .failure(let error)? = state.result { return (false, error) }
            state.upload.append(chunk)
            state.uploadBuffered += chunk.count
            defer { state.uploadWantsResume = false }
            return (state.uploadWantsResume, nil)
        }
        if let failed { throw failed }
        if wantsResume { resume() }
        try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Void, any Error>) in
            let ready: Result<Void, HTTPClientError>? = state.withLock { state in
                if case .failure(let error)? = state.result { return .failure(error) }
                if state.result != nil || state.uploadBuffered < highWater { return .success(()) }
                state.producer = continuation
                return nil
            }
            if let ready { continuation.resume(with: ready.mapError { $0 }) }
        }
    }

    /// The request body is complete.
    func finishUpload(resume: () -> Void) {
        let wantsResume = state.withLock { state in
            state.uploadDone = true
            defer { state.uploadWantsResume = false }
            return state.uploadWantsResume
        }
        if wantsResume { resume() }
    }

    // MARK: The curl thread

    /// Makes the easy handle and adds it to `multi`; an error when the request cannot even be set up.
    func start(in multi: UnsafeMutableRawPointer) -> HTTPClientError? {
        guard let easy = curl_easy_init() else { return HTTPClientError(url: url, reason: "curl_easy_init failed") }
        self.easy = easy
        let context = Unmanaged.passUnretained(self).toOpaque()
        // The caller's headers, and an empty `Expect:` so curl never waits for a 100 Continue: every body we send
        // is one the server asked for.
        for (name, value) in request.headers {
            headerList = curl_slist_append(headerList, "\(name): \(value)")
        }
        headerList = curl_slist_append(headerList, "Expect:")
        var failed: CURLcode = CURLE_OK
        func set(_ code: CURLcode) { if failed == CURLE_OK { failed = code } }
        set(CCurl_easy_setopt_pointer(easy, CURLOPT_URL, request.url))
        set(CCurl_easy_setopt_pointer(easy, CURLOPT_PROTOCOLS_STR, "http,https"))
        set(CCurl_easy_setopt_long(easy, CURLOPT_NOSIGNAL, 1))
        set(CCurl_easy_setopt_long(easy, CURLOPT_FOLLOWLOCATION, 0))
        set(CCurl_easy_setopt_long(easy, CURLOPT_TCP_KEEPALIVE, 1))
        set(CCurl_easy_setopt_long(easy, CURLOPT_BUFFERSIZE, 128 * 1024))
        set(CCurl_easy_setopt_long(easy, CURLOPT_UPLOAD_BUFFERSIZE, 128 * 1024))
        set(CCurl_easy_setopt_long(easy, CURLOPT_CONNECTTIMEOUT_MS, Self.milliseconds(request.connectTimeout)))
        set(CCurl_easy_setopt_long(easy, CURLOPT_TIMEOUT_MS, request.timeout.map(Self.milliseconds) ?? 0))
        // A stream that moves less than one byte a second for idleTimeout is abandoned; curl does not count the
        // time a transfer is paused for its reader.
        set(CCurl_easy_setopt_long(easy, CURLOPT_LOW_SPEED_LIMIT, 1))
        set(CCurl_easy_setopt_long(easy, CURLOPT_LOW_SPEED_TIME, max(1, Self.milliseconds(request.idleTimeout) / 1000)))
        set(CCurl_easy_setopt_pointer(easy, CURLOPT_HTTPHEADER, headerList))
        set(CCurl_easy_setopt_write_callback(easy, curlWrite))
        set(CCurl_easy_setopt_pointer(easy, CURLOPT_WRITEDATA, context))
        set(CCurl_easy_setopt_header_callback(easy, curlHeader))
        set(CCurl_easy_setopt_pointer(easy, CURLOPT_HEADERDATA, context))
        set(CCurl_easy_setopt_pointer(easy, CURLOPT_PRIVATE, context))
        switch request.method {
        case "HEAD":
            set(CCurl_easy_setopt_long(easy, CURLOPT_NOBODY, 1))
        case "GET" where !hasBodySource && request.body.isEmpty:
            set(CCurl_easy_setopt_long(easy, CURLOPT_HTTPGET, 1))
        default:
            if hasBodySource {
                // UPLOAD sends the body from the read callback (PUT unless told otherwise); a known length is
                // sent as Content-Length, an unknown one chunked.
                set(CCurl_easy_setopt_long(easy, CURLOPT_UPLOAD, 1))
                set(CCurl_easy_setopt_read_callback(easy, curlRead))
                set(CCurl_easy_setopt_pointer(easy, CURLOPT_READDATA, context))
                set(CCurl_easy_setopt_int64(easy, CURLOPT_INFILESIZE_LARGE, curl_off_t(uploadLength ?? -1)))
            } else if !request.body.isEmpty || request.method == "POST" || request.method == "PUT" {
                set(CCurl_easy_setopt_int64(easy, CURLOPT_POSTFIELDSIZE_LARGE, curl_off_t(request.body.count)))
                request.body.withUnsafeBytes { body in
                    // COPYPOSTFIELDS copies now, so the buffer need not outlive this call.
                    set(CCurl_easy_setopt_pointer(easy, CURLOPT_COPYPOSTFIELDS, body.baseAddress ?? UnsafeRawPointer(bitPattern: 1)))
                }
            }
            set(CCurl_easy_setopt_pointer(easy, CURLOPT_CUSTOMREQUEST, request.method))
        }
        guard failed == CURLE_OK else {
            release()
            return HTTPClientError(url: url, reason: String(cString: curl_easy_strerror(failed)))
        }
        // The thread holds the transfer while curl holds its context pointer.
        _ = Unmanaged.passRetained(self)
        let added = curl_multi_add_handle(multi, easy)
        guard added == CURLM_OK else {
            Unmanaged.passUnretained(self).release()
            release()
            return HTTPClientError(url: url, reason: String(cString: curl_multi_strerror(added)))
        }
        return nil
    }

    /// The length of a streamed request body, when known (set before `start`).
    var uploadLength: Int64?

    /// Removes the handle (if added), frees it, and settles every waiter with `result`.
    func finish(in multi: UnsafeMutableRawPointer, result: Result<Void, HTTPClientError>) {
        if let easy {
            curl_multi_remove_handle(multi, easy)
            Unmanaged.passUnretained(self).release()
        }
        release()
        settle(result)
    }

    /// A failure before the transfer started.
    func fail(_ error: HTTPClientError) {
        release()
        settle(.failure(error))
    }

    /// Cancelled before it was started.
    var isSettled: Bool { state.withLock { $0.result != nil } }

    /// A cancel that arrived before `add` or after the end: settles whatever still waits.
    func markCancelled(_ error: HTTPClientError) {
        settle(.failure(error))
    }

    private func release() {
        if let easy { curl_easy_cleanup(easy) }
        easy = nil
        curl_slist_free_all(headerList)
        headerList = nil
    }

    private func settle(_ result: Result<Void, HTTPClientError>) {
        let (head, reader, producer, delivered, status, headers) = state.withLock { state in
            if state.result == nil { state.result = result }
            defer {
                state.head = nil
                state.reader = nil
                state.producer = nil
                state.headDelivered = true
            }
            return (state.head, state.reader, state.producer, state.headDelivered, state.status, state.headers)
        }
        switch result {
        case .success:
            if !delivered { head?.resume(returning: (status, headers)) }
            reader?.resume(returning: nil)
            producer?.resume()
        case .failure(let error):
            head?.resume(throwing: error)
            reader?.resume(throwing: error)
            producer?.resume(throwing: error)
        }
    }

    func unpause() {
        guard let easy, recvPaused || sendPaused else { return }
        recvPaused = false
        sendPaused = false
        curl_easy_pause(easy, CCurl_PAUSE_CONT())
    }

    func connectsUsed() -> Int {
        guard let easy else { return 0 }
        var count = 0
        _ = CCurl_easy_getinfo_long(easy, CURLINFO_NUM_CONNECTS, &count)
        return count
    }

    /// The error for a failed transfer, classified: never sent (`.connect`), too slow (`.timeout`), or cut off.
    func error(for code: CURLcode) -> HTTPClientError {
        let reason = String(cString: curl_easy_strerror(code))
        var pretransfer: curl_off_t = 0
        if let easy { _ = CCurl_easy_getinfo_off_t(easy, CURLINFO_PRETRANSFER_TIME_T, &pretransfer) }
        switch code {
        case CURLE_COULDNT_CONNECT, CURLE_COULDNT_RESOLVE_HOST, CURLE_COULDNT_RESOLVE_PROXY:
            return HTTPClientError(url: url, reason: reason, kind: .connect)
        case CURLE_OPERATION_TIMEDOUT:
            // Timed out before anything was sent: as good as a refused connection.
            return HTTPClientError(url: url, reason: reason, kind: pretransfer == 0 ? .connect : .timeout)
        default:
            return HTTPClientError(url: url, reason: reason, kind: .transfer)
        }
    }

    // Callbacks, on the curl thread.

    fileprivate func received(_ bytes: UnsafeRawBufferPointer) -> Int {
        enum Action { case take(CheckedContinuation<[UInt8]?, any Error>?), pause }
        let chunk = Array(bytes)
        let (action, head) = state.withLock { state -> (Action, HeadDelivery?) in
            let head = Self.headIfReady(&state)
            if state.buffered >= highWater {
                state.readerWantsResume = true
                return (.pause, head)
            }
            if let reader = state.reader {
                state.reader = nil
                return (.take(reader), head)
            }
            state.chunks.append(chunk)
            state.buffered += chunk.count
            return (.take(nil), head)
        }
        head?.deliver()
        switch action {
        case .pause:
            recvPaused = true
            return CCurl_WRITEFUNC_PAUSE()
        case .take(let reader):
            reader?.resume(returning: chunk)
            return bytes.count
        }
    }

    fileprivate func headerLine(_ bytes: UnsafeRawBufferPointer) {
        let line = String(decoding: bytes, as: UTF8.self)
        let head: HeadDelivery? = state.withLock { state in
            if line.hasPrefix("HTTP/") {
                // Each status line starts a block: after a 1xx (or a proxy's reply) only the last one counts.
                state.headers.removeAll()
                let parts = line.split(separator: " ", maxSplits: 2)
                state.status = parts.count > 1 ? Int(parts[1]) ?? 0 : 0
                state.informational = (100..<200).contains(state.status)
                return nil
            }
            if line == "\r\n" || line == "\n" {
                return state.informational ? nil : Self.headIfReady(&state)
            }
            guard let colon = line.firstIndex(of: ":") else { return nil }
            let name = line[..<colon].lowercased()
            let value = line[line.index(after: colon)...].trimmingCharacters(in: .whitespacesAndNewlines)
            state.headers.append((name, value))
            return nil
        }
        head?.deliver()
    }

    private struct HeadDelivery {
        let continuation: CheckedContinuation<(Int, [(name: String, value: String)]), any Error>
        let status: Int
        let headers: [(name: String, value: String)]
        func deliver() { continuation.resume(returning: (status, headers)) }
    }

    private static func headIfReady(_ state: inout State) -> HeadDelivery? {
        guard !state.headDelivered, !state.informational, state.status != 0, let head = state.head else { return nil }
        state.headDelivered = true
        state.head = nil
        return HeadDelivery(continuation: head, status: state.status, headers: state.headers)
    }

    fileprivate func send(into buffer: UnsafeMutableRawBufferPointer) -> Int {
        let (count, producer, pause, abort) = state.withLock { state -> (Int, CheckedContinuation<Void, any Error>?, Bool, Bool) in
            if case .failure? = state.result { return (0, nil, false, true) }
            var written = 0
            while written < buffer.count, let first = state.upload.first {
                let n = min(buffer.count - written, first.count - state.uploadOffset)
                first.withUnsafeBytes { source in
                    buffer.baseAddress!.advanced(by: written).copyMemory(
                        from: source.baseAddress!.advanced(by: state.uploadOffset), byteCount: n
                    )
                }
                written += n
                state.uploadOffset += n
                if state.uploadOffset == first.count {
                    state.upload.removeFirst()
                    state.uploadOffset = 0
                }
            }
            state.uploadBuffered -= written
            var producer: CheckedContinuation<Void, any Error>?
            if state.uploadBuffered < highWater, let waiting = state.producer {
                producer = waiting
                state.producer = nil
            }
            if written == 0 && !state.uploadDone {
                state.uploadWantsResume = true
                return (0, producer, true, false)
            }
            return (written, producer, false, false)
        }
        producer?.resume()
        if abort { return CCurl_READFUNC_ABORT() }
        if pause {
            sendPaused = true
            return CCurl_READFUNC_PAUSE()
        }
        return count
    }

    static func milliseconds(_ d: Duration) -> Int {
        Int(d.components.seconds) * 1000 + Int(d.components.attoseconds / 1_000_000_000_000_000)
    }
}

private func curlWrite(_ data: UnsafeMutablePointer<CChar>?, _ size: Int, _ count: Int, _ userdata: UnsafeMutableRawPointer?) -> Int {
    let transfer = Unmanaged<CurlTransfer>.fromOpaque(userdata!).takeUnretainedValue()
    return transfer.received(UnsafeRawBufferPointer(start: data, count: size * count))
}

private func curlHeader(_ data: UnsafeMutablePointer<CChar>?, _ size: Int, _ count: Int, _ userdata: UnsafeMutableRawPointer?) -> Int {
    let transfer = Unmanaged<CurlTransfer>.fromOpaque(userdata!).takeUnretainedValue()
    transfer.headerLine(UnsafeRawBufferPointer(start: data, count: size * count))
    return size * count
}

private func curlRead(_ buffer: UnsafeMutablePointer<CChar>?, _ size: Int, _ count: Int, _ userdata: UnsafeMutableRawPointer?) -> Int {
    let transfer = Unmanaged<CurlTransfer>.fromOpaque(userdata!).takeUnretainedValue()
    return transfer.send(into: UnsafeMutableRawBufferPointer(start: buffer, count: size * count))
}
