/// Where one server stream is in its life, as a value: which events still matter in each state, and what
/// ends the response. The connection handler owns one per stream (in ``ServerRPC``, beside the stream's
/// buffers, timers and task) and asks it before acting on a session event or on its handler's output.
///
/// A stream goes `receivingHeaders` → `open` (a gRPC call or a plain HTTP request runs) → `closed` (the
/// response is complete on our side: trailers or the end of a plain body queued behind the bytes still to
/// send, a Trailers-Only response, or a reset); a request refused from its headers goes straight to
/// `closed`. The request's own end (END_STREAM) is independent of that: it may come before the handler starts,
/// while it runs, or after the response ended (gRPC PROTOCOL-HTTP2.md, "Early Server Closure").
struct ServerStreamState {
    enum Kind: Equatable {
        /// A gRPC call.
        case rpc
        /// A plain HTTP GET or HEAD (``PlainHTTPHandler``).
        case plain
    }

    enum Phase: Equatable {
        /// The request's header block (HEADERS, CONTINUATION) is arriving.
        case receivingHeaders
        /// A handler runs.
        case open(Kind)
        /// Nothing more goes into the response but what is already queued.
        case closed
    }

    /// What ends the response once the bytes queued before it are out.
    enum Ending {
        /// gRPC trailers (`grpc-status`, `grpc-message`, trailing metadata) with END_STREAM.
        case trailers([(String, String)])
        /// END_STREAM after a plain HTTP body, without trailers.
        case endOfBody
    }

    private(set) var phase = Phase.receivingHeaders
    private(set) var kind: Kind?
    /// The client's END_STREAM has arrived: no more request bytes.
    private(set) var requestEnded = false
    /// The response's HEADERS are submitted.
    private(set) var responseHeadersSent = false
    /// Waits in the state until the stream's queued bytes are out (``takeEnding()``).
    private var ending: Ending?

    var isReceivingHeaders: Bool { phase == .receivingHeaders }
    /// A handler runs and may still add to the response.
    var isOpen: Bool { if case .open = phase { true } else { false } }
    /// A gRPC call runs: its request messages go to its handler.
    var isOpenRPC: Bool { phase == .open(.rpc) }
    /// The stream serves a plain HTTP request (open or ended).
    var isPlain: Bool { kind == .plain }

    /// The headers were accepted: a handler of `kind` starts. Only from `receivingHeaders`.
    mutating func open(_ kind: Kind) {
        precondition(phase == .receivingHeaders, "a stream opens once, from its headers")
        phase = .open(kind)
        self.kind = kind
    }

    /// The response is complete (refused, answered Trailers-Only, reset, or a plain response without body).
    mutating func close() {
        phase = .closed
    }

    /// The client's END_STREAM arrived; true when a running gRPC call must be told (its inbox ends).
    mutating func endRequest() -> Bool {
        requestEnded = true
        return isOpenRPC
    }

    /// True exactly once, for the first response HEADERS of an open stream: the caller submits them now.
    mutating func beginResponse() -> Bool {
        guard isOpen, !responseHeadersSent else { return false }
        responseHeadersSent = true
        return true
    }

    /// A gRPC call's status. With response headers sent, `trailers` wait for the messages queued before them
    /// and `true` is returned; without, the caller answers Trailers-Only (gRPC PROTOCOL-HTTP2.md,
    /// "Responses") and `false` is returned. Either way the stream is closed.
    mutating func finish(trailers: @autoclosure () -> [(String, String)]) -> Bool {
        phase = .closed
        guard responseHeadersSent else { return false }
        ending = .trailers(trailers())
        return true
    }

    /// A plain body's last chunk is queued: END_STREAM follows it.
    mutating func endBody() {
        phase = .closed
        ending = .endOfBody
    }

    /// What ends the response, once (the caller has sent everything queued before it).
    mutating func takeEnding() -> Ending? {
        defer { ending = nil }
        return ending
    }
}
