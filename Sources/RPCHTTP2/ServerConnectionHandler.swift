import Logging
import NIOCore
import OpenSSLTLS
import RPCCore
import Synchronization

/// Asks a connection to shut down gracefully (sent by ``GRPCServer`` through the channel pipeline).
struct GracefulShutdownEvent: Sendable {}

/// One server connection: feeds the socket's bytes to an ``NGHTTP2Session``, turns streams into RPCs run
/// as tasks, and writes what the session produces. Everything here runs on the channel's event loop; RPC
/// tasks reach it through `execute`.
final class ServerConnectionHandler: ChannelInboundHandler, NGHTTP2SessionDelegate {
    typealias InboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    private let router: RPCRouter
    private let plainHTTP: (any PlainHTTPHandler)?
    private let refusals: (any RefusedCallObserver)?
    private let configuration: GRPCServerConfiguration
    /// Counts the RPC tasks this connection starts, so the server can wait for them at shutdown.
    private let handlers: RunningHandlers
    private var logger: Logger
    private var session: NGHTTP2Session!
    private var context: ChannelHandlerContext!
    private var streams: [Int32: ServerRPC] = [:]
    private let pump = SessionPump()
    private var peer = "unknown"
    /// The client's verified certificate, when the connection is TLS and it sent one.
    private var clientCertificate: ClientCertificate?
    private var pingStrikes = 0
    private var lastPingAt: NIODeadline?
    private var shutdown: ShutdownState = .running
    private var closing = false
    // Connection lifetime (grpc-go's keepalive.ServerParameters): when the peer last sent anything, since when
    // no stream has been open (nil while one is), when our keepalive PING went out, and the timers.
    private var lastReadAt = NIODeadline.now()
    private var idleSince: NIODeadline? = .now()
    private var keepalivePingSentAt: NIODeadline?
    private var lifetimeTimers: [LifetimeTimer: Scheduled<Void>] = [:]
    /// Streams opened during the read being processed, whose handler tasks start when it is done.
    private var pendingLaunches: [ServerRPC] = []
    /// Header names and values this client sent on its last calls, reused for identical bytes.
    private var recentHeaderStrings = RecentHeaderStrings()
    /// When the header block under way began (HEADERS without END_HEADERS, awaiting CONTINUATION): nothing
    /// else may come on the connection until it ends, so one that never ends must not hold it.
    private var headerBlockStartedAt: NIODeadline?
    /// Where the connection's handler tasks run: its event loop, or Swift's global executor (nil).
    private var handlerExecutor: EventLoopExecutor?
    /// Request bytes given back before their reader took them (see ``InboundMessages``), and the streams
    /// waiting for some, in arrival order.
    private var receiveBudget: ReceiveBudget!
    /// How the budget reaches this handler (see ``ServerConnectionLink``).
    private var link: ServerConnectionLink?
    /// Response bytes queued across the streams' gates.
    private let sendBudget: SendBudget
    private var creditLine: [Int32] = []

    private enum LifetimeTimer { case handshake, idle, age, keepalive, headerBlock }

    private enum ShutdownState {
        case running
        /// GOAWAY(2^31-1) and a PING are out; the final GOAWAY follows the PING's ACK.
        case noticeSent
        /// The final GOAWAY is out; the connection closes when the last stream ends.
        case goAwaySent
    }

    /// Bytes a plain HTTP response may queue ahead of the peer's window.
    static let plainSendBufferSize = 128 * 1024

    /// The PING that follows the shutdown notice (any fixed value: we only match it in its ACK).
    private static let shutdownPingData: UInt64 = 0x6772_7063_6279_6521

    init(
        router: RPCRouter, plainHTTP: (any PlainHTTPHandler)?, refusals: (any RefusedCallObserver)? = nil,
        configuration: GRPCServerConfiguration, logger: Logger, handlers: RunningHandlers = RunningHandlers()
    ) {
        self.handlers = handlers
        self.router = router
        self.plainHTTP = plainHTTP
        self.refusals = refusals
        self.configuration = configuration
        sendBudget = SendBudget(limit: configuration.maxConnectionSendBufferedBytes)
        self.logger = logger
    }

    // MARK: Channel events

    func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
        if context.channel.isActive { start(context: context) }
    }

    func channelActive(context: ChannelHandlerContext) {
        start(context: context)
        context.fireChannelActive()
    }

    /// The context refers back to this handler: let go of it, or the two keep each other alive.
    func handlerRemoved(context: ChannelHandlerContext) {
        self.context = nil
        link?.handler = nil
    }

    private func start(context: ChannelHandlerContext) {
        guard session == nil else { return }
        peer = Self.describe(context.channel.remoteAddress)
        logger[metadataKey: "net.peer"] = "\(peer)"
        do {
            session = try NGHTTP2Session(role: .server, settings: .init(
                maxConcurrentStreams: configuration.maxConcurrentStreams,
                initialWindowSize: configuration.streamWindowSize,
                connectionWindowSize: configuration.connectionWindowSize,
                maxHeaderListSize: UInt32(configuration.maxHeaderListSize)
            ), delegate: self)
        } catch {
            logger.error("cannot start an HTTP/2 session", metadata: ["error": "\(error)"])
            context.close(promise: nil)
            return
        }
        if configuration.runsHandlersOnEventLoops { handlerExecutor = EventLoopExecutor(context.eventLoop) }
        let link = ServerConnectionLink()
        link.handler = self
        self.link = link
        let bound = NIOLoopBound(link, eventLoop: context.eventLoop)
        receiveBudget = ReceiveBudget(limit: configuration.maxConnectionBufferedBytes) {
            bound.eventLoop.execute { bound.value.handler?.serveCreditLine() }
        }
        // The loop's clock, which tests can move.
        lastReadAt = context.eventLoop.now
        idleSince = lastReadAt
        schedule(.handshake, in: configuration.handshakeTimeout) { $0.checkHandshake() }
        if let idle = configuration.maxConnectionIdle { schedule(.idle, in: idle) { $0.checkIdle() } }
        if let age = configuration.maxConnectionAge {
            // ±10% so that connections opened together do not all go together (as grpc-go does).
            schedule(.age, in: age * Double.random(in: 0.9...1.1)) { handler in
                handler.logger.debug("maximum connection age reached; GOAWAY")
                handler.beginGracefulShutdown(grace: handler.configuration.maxConnectionAgeGrace)
            }
        }
        schedule(.keepalive, in: configuration.keepalive.time) { $0.checkKeepalive() }
        flush()
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let buffer = unwrapInboundIn(data)
        lastReadAt = context.eventLoop.now
        do {
            try buffer.withUnsafeReadableBytes { try session.receive($0) }
        } catch {
            // nghttp2 has queued a GOAWAY for the protocol error: send it, then close.
            logger.debug("HTTP/2 protocol error; closing", metadata: ["error": "\(error)"])
            flush()
            context.close(promise: nil)
            return
        }
        launchPendingHandlers()
        // A header block left unfinished by this read (rare: a request's headers normally come in one read).
        if headerBlockStartedAt != nil, lifetimeTimers[.headerBlock] == nil {
            schedule(.headerBlock, in: configuration.handshakeTimeout) { $0.checkHeaderBlock() }
        }
        flush()
    }

    func channelWritabilityChanged(context: ChannelHandlerContext) {
        if context.channel.isWritable { flush() }
        context.fireChannelWritabilityChanged()
    }

    func channelInactive(context: ChannelHandlerContext) {
        // gRPC PROTOCOL-HTTP2.md, "Connection failure": a lost connection ends its calls with CANCELLED.
        let error = RPCError(code: .cancelled, message: "the connection closed")
        for rpc in streams.values { rpc.abandon(error) }
        streams.removeAll()
        // The timers hold this handler: let it go now, not hours later.
        for timer in lifetimeTimers.values { timer.cancel() }
        lifetimeTimers.removeAll()
        context.fireChannelInactive()
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if event is GracefulShutdownEvent {
            beginGracefulShutdown()
        } else if let tls = event as? TLSConnectionInfo {
            clientCertificate = tls.peerCertificate.map {
                ClientCertificate(subject: $0.subject, subjectAlternativeNames: $0.subjectAlternativeNames)
            }
            context.fireUserInboundEventTriggered(event)
        } else {
            context.fireUserInboundEventTriggered(event)
        }
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        if let tls = error as? TLSError, tls.phase == .handshake {
            // One line per refused connection (no ALPN h2, an old protocol version, an unknown client CA).
            logger.info("TLS handshake failed", metadata: ["reason": "\(tls.reason)"])
        } else {
            logger.debug("connection error", metadata: ["error": "\(error)"])
        }
        context.close(promise: nil)
    }

    // MARK: Output

    /// Writes what the session has to send (``SessionPump``), then closes once the session is done.
    private func flush() {
        do {
            guard try pump.flush(session, to: context) else { return }
        } catch {
            logger.debug("HTTP/2 session failed; closing", metadata: ["error": "\(error)"])
            context?.close(promise: nil)
            return
        }
        if !session.wantsRead && !session.wantsWrite || shutdown == .goAwaySent && streams.isEmpty {
            closeAfterFinalWrites()
        }
    }

    /// Closes our side first and the socket a little later: closing at once, while the peer may still send
    /// (a PING ACK, a WINDOW_UPDATE), makes the kernel answer with a reset that can destroy the GOAWAY
    /// before the peer reads it.
    private func closeAfterFinalWrites() {
        guard let context, !closing else { return }
        closing = true
        context.close(mode: .output, promise: nil)
        context.eventLoop.scheduleTask(in: .seconds(1)) { [channel = context.channel] in
            channel.close(promise: nil)
        }
    }

    /// A flush later in this event-loop turn: work arriving from several RPC tasks goes out in one write.
    private func scheduleFlush() {
        guard let context else { return }
        pump.scheduleFlush(on: context.eventLoop) {
            let handler = NIOLoopBound(self, eventLoop: context.eventLoop)
            return { handler.value.flush() }
        }
    }

    // MARK: Session events

    func beginHeaders(stream: Int32) {
        // Session callbacks run inside `channelRead`, which has just read the clock: not once per stream.
        headerBlockStartedAt = lastReadAt
        if streams[stream] == nil {
            streams[stream] = ServerRPC(id: stream, maxMessageSize: configuration.maxReceiveMessageSize)
            idleSince = nil
        }
    }

    func header(stream: Int32, name: UnsafeRawBufferPointer, value: UnsafeRawBufferPointer) -> HeaderVerdict {
        guard let rpc = streams[stream], rpc.state.isReceivingHeaders else { return .accept }
        // Counted as gRPC PROTOCOL-HTTP2.md ("Requests") suggests; nghttp2.h leaves the limit to us: name + value + 32 per field.
        rpc.headerListSize += name.count + value.count + 32
        guard rpc.headerListSize <= configuration.maxHeaderListSize else {
            // Over the SETTINGS_MAX_HEADER_LIST_SIZE we advertise: the stream is reset once its block ends (see
            // headersComplete), and the connection lives on. Far over it, the block decodes to much more than
            // it weighs (an HPACK bomb: one large table entry referenced thousands of times, a byte each): stop
            // decoding and end the connection (RFC 9113 §10.5.1, ENHANCE_YOUR_CALM).
            rpc.headerFields = []
            if rpc.headerListSize > 4 * configuration.maxHeaderListSize {
                logger.debug("header list far over the limit; closing", metadata: ["limit": "\(configuration.maxHeaderListSize)"])
                return .abortConnection
            }
            return .accept
        }
        // A request has about eight fields: one allocation instead of one per doubling.
        if rpc.headerFields.isEmpty { rpc.headerFields.reserveCapacity(8) }
        let nameString = recentHeaderStrings.string(name)
        let valueString = RecentHeaderStrings.mayKeep(nameString) ? recentHeaderStrings.string(value) : String(decoding: value, as: UTF8.self)
        rpc.headerFields.append((nameString, valueString))
        return .accept
    }

    func headersComplete(stream: Int32, endStream: Bool) {
        headerBlockStartedAt = nil
        guard let rpc = streams[stream] else { return }
        if rpc.state.isReceivingHeaders, rpc.headerListSize > configuration.maxHeaderListSize {
            session.resetStream(stream, code: .frameSizeError)  // as grpc-go internal/transport/http2_server.go does
            rpc.state.close()
            return
        }
        if rpc.state.isReceivingHeaders {
            start(rpc)
        }
        if endStream { requestEnded(rpc) }
    }

    func data(stream: Int32, bytes: UnsafeRawBufferPointer) {
        guard let rpc = streams[stream], rpc.state.isOpenRPC else {
            // A stream we answered already: its bytes still count against the connection window.
            session.consume(stream: stream, bytes: bytes.count)
            return
        }
        let inbox = inbox(of: rpc)
        do {
            try rpc.inbound.receive(bytes) { message, cost, reserved in
                inbox.push(.init(element: message, cost: cost, reserved: reserved))
            }
        } catch {
            fail(rpc, Self.status(for: error))
            return
        }
        settlePartial(rpc)
    }

    /// Gives back what may be of the message still arriving, and keeps the credit line in step: a stream the
    /// budget cannot serve yet gets in line, unless the line is full (streams in it hold their unsettled bytes
    /// in the connection window, and the streams holding the budget need room there to finish, so the line
    /// must leave them half of it); a stream served, or no longer in need, leaves it.
    private func settlePartial(_ rpc: ServerRPC) {
        consumePartial(rpc, ahead: creditLine.first == rpc.id)
        guard rpc.inbound.awaitsCredit else {
            leaveCreditLine(rpc.id)
            return
        }
        guard !creditLine.contains(rpc.id) else { return }
        let maxWaiting = max(1, Int(configuration.connectionWindowSize) / (2 * Int(configuration.streamWindowSize)))
        guard creditLine.count < maxWaiting else {
            fail(rpc, Status(
                code: .resourceExhausted,
                message: "the connection holds too many partly received request messages (\(receiveBudget.limit) bytes); retry"
            ))
            return
        }
        creditLine.append(rpc.id)
    }

    private func consumePartial(_ rpc: ServerRPC, ahead: Bool) {
        guard let inbox = rpc.inbox else { return }
        session.consume(stream: rpc.id, bytes: rpc.inbound.settle(budget: receiveBudget, ahead: ahead) { inbox.readerCaughtUp() })
    }

    /// Takes a stream out of the credit line. When it was first, the next may fit now, and an empty line must
    /// stop holding newcomers back: the line is served again.
    private func leaveCreditLine(_ stream: Int32) {
        guard let position = creditLine.firstIndex(of: stream) else { return }
        creditLine.remove(at: position)
        guard position == 0, let context else { return }
        let handler = NIOLoopBound(self, eventLoop: context.eventLoop)
        context.eventLoop.execute { handler.value.serveCreditLine() }
    }

    /// Budget was released while streams waited (or the line changed): serves them in order, as far as it goes.
    private func serveCreditLine() {
        receiveBudget.serving()
        while let id = creditLine.first {
            if let rpc = streams[id], rpc.state.isOpenRPC, rpc.inbound.awaitsCredit {
                consumePartial(rpc, ahead: true)
                if rpc.inbound.awaitsCredit { break }
            }
            creditLine.removeFirst()
        }
        receiveBudget.served(stillWaiting: !creditLine.isEmpty)
        scheduleFlush()
    }

    func dataEnded(stream: Int32) {
        if let rpc = streams[stream] { requestEnded(rpc) }
    }

    func streamClosed(stream: Int32, errorCode: UInt32) {
        guard let rpc = streams.removeValue(forKey: stream) else { return }
        if streams.isEmpty { idleSince = context?.eventLoop.now ?? .now() }
        rpc.stallCheck?.cancel()
        if rpc.state.isOpen {
            // gRPC PROTOCOL-HTTP2.md, "Client Cancellation": the client reset the stream (or the connection is going): cancel the handler.
            let code: StatusCode = errorCode == NGHTTP2Session.ErrorCode.cancel.rawValue || errorCode == 0 ? .cancelled : .internal
            rpc.abandon(RPCError(code: code, message: "the client reset the stream"))
        }
        // After `abandon`, whose error its writers get; this only closes a gate still open (a call that
        // had ended), and takes what the stream left unsent out of the connection's send budget.
        rpc.gate?.discardQueued(Self.streamClosedError)
        if let inbox = rpc.inbox {
            let queued = inbox.releaseAll()
            let partial = rpc.inbound.abandon()
            session.consume(stream: stream, bytes: queued.window + partial.window)
            receiveBudget.release(queued.reserved + partial.reserved)
            leaveCreditLine(stream)
        }
        if shutdown == .goAwaySent && streams.isEmpty { scheduleFlush() }
    }

    func endStreamHeadersSent(stream: Int32) {
        // gRPC PROTOCOL-HTTP2.md, "Early Server Closure": trailers before the client's END_STREAM are followed by RST_STREAM(NO_ERROR).
        if let rpc = streams[stream], !rpc.state.requestEnded {
            session.resetStream(stream, code: .noError)
        }
    }

    func readData(stream: Int32, into buffer: UnsafeMutableRawBufferPointer) -> NGHTTP2Session.DataReadResult {
        guard let rpc = streams[stream] else { return .end(0, trailers: []) }
        let written = rpc.outbox.drain(into: buffer)
        if written > 0 {
            rpc.gate?.drained(written)
            if rpc.state.isPlain { rpc.plainSent += written }
            // Like grpc-go: sending data forgives earlier pings (clients ping to probe bandwidth while
            // data flows).
            pingStrikes = 0
        }
        if rpc.outbox.isEmpty, let ending = rpc.state.takeEnding() {
            switch ending {
            case .trailers(let trailers): return .end(written, trailers: trailers)
            case .endOfBody: return .end(written, trailers: nil)
            }
        }
        return written > 0 ? .bytes(written) : .deferred
    }

    func goAwayReceived(lastStreamID: Int32, errorCode: UInt32) {}

    func pingReceived() {
        // grpc/grpc doc/keepalive.md: pings more often than allowed earn strikes; too many end the connection (with one GOAWAY).
        guard shutdown != .goAwaySent else { return }
        let now = NIODeadline.now()
        defer { lastPingAt = now }
        let keepalive = configuration.keepalive
        let tooSoon = lastPingAt.map { now - $0 < TimeAmount(keepalive.minPingInterval) } ?? false
        let idle = streams.isEmpty && !keepalive.permitWithoutCalls
        guard tooSoon || (idle && lastPingAt != nil) else { return }
        pingStrikes += 1
        if pingStrikes > keepalive.maxPingStrikes {
            logger.debug("too many pings; closing")
            session.submitGoAway(lastStreamID: session.lastProcessedStreamID, code: .enhanceYourCalm, debugData: "too_many_pings")
            shutdown = .goAwaySent
            for rpc in streams.values where rpc.state.isOpen {
                rpc.abandon(RPCError(code: .unavailable, message: "the connection is closing"))
            }
            scheduleFlush()
        }
    }

    func pingAckReceived(opaqueData: UInt64) {
        if opaqueData == Self.shutdownPingData, shutdown == .noticeSent {
            sendFinalGoAway()
        }
    }

    // MARK: RPCs

    private func start(_ rpc: ServerRPC) {
        pingStrikes = 0
        if let plainHTTP, let method = rpc.headerFields.first(where: { $0.name == ":method" })?.value,
            method == "GET" || method == "HEAD"
        {
            runPlain(rpc, method: method, handler: plainHTTP)
            rpc.headerFields = []
            return
        }
        switch ServerRequestHead.validate(rpc.headerFields) {
        case .failure(let rejection):
            rpc.state.close()
            respondEarly(rpc, httpStatus: rejection.httpStatus, status: rejection.status,
                         listAcceptedEncodings: rejection.listAcceptedEncodings)
        case .success(let head):
            guard let route = router.route(forPath: head.path) else {
                // Unknown service or method: UNIMPLEMENTED, worded as grpc-go server.go (handleStream) words it.
                let known = router.services.contains { $0.fullyQualifiedName == head.service }
                let service = Status.excerpt(head.service)
                let message = known ? "unknown method \(Status.excerpt(head.methodName)) for service \(service)" : "unknown service \(service)"
                rpc.state.close()
                respondEarly(rpc, httpStatus: 200, status: Status(code: .unimplemented, message: message))
                return
            }
            run(rpc, head: head, route: route)
        }
        rpc.headerFields = []
    }

    /// A gRPC request's headers are complete and routed: its deframer is set up now, its inbox with its first
    /// bytes (``inbox(of:)``), the rest when its handler launches (``launchPendingHandlers``).
    private func run(_ rpc: ServerRPC, head: ServerRequestHead, route: RPCRoute) {
        rpc.state.open(.rpc)
        rpc.path = head.path
        rpc.inbound = InboundMessages(
            maxMessageSize: configuration.maxReceiveMessageSize, encoding: head.encoding,
            reserveAbove: Int(configuration.streamWindowSize)
        )
        rpc.responseEncoding = MessageEncoding.preferred(fromAcceptHeader: head.acceptEncoding)
        rpc.call = (head, route)
        pendingLaunches.append(rpc)
    }

    /// The handler's inbox of request messages, made with the request's first bytes, its end, or the
    /// handler's launch, whichever comes first: a stream reset before any of them (rapid reset) needs none.
    private func inbox(of rpc: ServerRPC) -> StreamInbox<[UInt8]> {
        if let inbox = rpc.inbox { return inbox }
        let handler = NIOLoopBound(self, eventLoop: context.eventLoop)
        let loop = context.eventLoop
        let id = rpc.id
        // Always a loop task: the inbox also calls this from `push`, inside a session callback.
        let inbox = StreamInbox<[UInt8]>(batch: Int(configuration.streamWindowSize / 4), budget: receiveBudget) {
            loop.execute { handler.value.giveBackWindow(stream: id) }
        }
        rpc.inbox = inbox
        return inbox
    }

    /// Starts the handler of a stream this read opened: its context, its writer, its task, and the timer of
    /// its time limit (the client's deadline, or the server's limit when that comes first or the client set
    /// none).
    private func launch(_ rpc: ServerRPC, head: ServerRequestHead, route: RPCRoute, on loop: any EventLoop) {
        let inbox = inbox(of: rpc)
        let handler = NIOLoopBound(self, eventLoop: loop)
        let id = rpc.id
        let limited = configuration.maxCallDuration.map { limit in head.timeout.map { $0 > limit } ?? true } ?? false
        let timeout = limited ? configuration.maxCallDuration : head.timeout
        let deadline = timeout.map { ContinuousClock.now + $0 }
        let responseMetadata = ResponseMetadata()
        let serverContext = ServerContext(
            descriptor: route.descriptor, requestMetadata: head.metadata, peer: peer,
            deadline: deadline, responseMetadata: responseMetadata, requestEncoding: head.encoding?.rawValue,
            authority: head.authority, clientCertificate: clientCertificate
        )
        rpc.responseMetadata = responseMetadata
        let gate = OutboundGate(
            highWater: configuration.streamSendBufferSize, lowWater: configuration.streamSendBufferSize / 4, budget: sendBudget
        )
        rpc.gate = gate

        // A single-response method's message waits for the handler's return and leaves with the status:
        // one hop to the event loop instead of two.
        let holdsResponse = !route.descriptor.kind.serverStreams
        let held = Mutex<OutboundMessage?>(nil)
        let encoding = rpc.responseEncoding
        let compressByDefault = configuration.compressResponses
        let writer = RPCWriter<[UInt8]> { message in
            let compress = responseMetadata.compressMessages ?? compressByDefault
            let framed = MessageFramer.frame(message, encoding: compress ? encoding : nil)
            if holdsResponse, held.withLock({ $0 == nil }) {
                held.withLock { $0 = framed }
                return
            }
            // A loop task even from the loop: messages written meanwhile go in the same batch.
            if try gate.push(framed) { loop.execute { handler.value.takePending(stream: id) } }
            try await gate.waitForRoom()
        }
        let inbound = RPCAsyncSequence { try await inbox.next() }
        let logger = self.logger
        let handlers = self.handlers
        handlers.started()
        rpc.task = Task(executorPreference: handlerExecutor) { @Sendable in
            defer { handlers.finished() }
            var status = Status.ok
            var trailers = Metadata()
            do {
                try await route.handle(RPCServerStream(inbound: inbound, outbound: writer), serverContext)
            } catch {
                if !(error is RPCError || error is CancellationError) {
                    // UNKNOWN for the peer (grpc/grpc doc/statuscodes.md); the error itself stays in the log.
                    logger.error("handler failed", metadata: ["rpc.method": "\(route.descriptor)", "error": "\(error)"])
                }
                let error = RPCError(handlerError: error)
                status = error.status
                trailers = error.metadata
            }
            trailers.add(contentsOf: responseMetadata.trailing)
            let response = status.code == .ok ? held.withLock { $0 } : nil
            let finalStatus = status
            let finalTrailers = trailers
            Self.onLoop(loop) {
                handler.value.finish(stream: id, status: finalStatus, trailers: finalTrailers, message: response)
            }
        }
        if let timeout {
            rpc.deadlineTimer = loop.scheduleTask(in: TimeAmount(timeout)) {
                handler.value.deadlineExpired(stream: id, serverLimit: limited ? timeout : nil)
            }
        }
    }

    /// What a writer gets after its call ended, or its stream closed; made once, not boxed per call.
    private static let callEndedError: any Error = RPCError(code: .internal, message: "the call has ended")
    private static let streamClosedError: any Error = RPCError(code: .cancelled, message: "the stream is closed")

    /// For handler tasks: runs `body` on the connection's loop, at once when the task is already there (it
    /// then runs as a task of the loop's own, never inside a session callback), else as a task enqueued there.
    private static func onLoop(_ loop: any EventLoop, _ body: @escaping @Sendable () -> Void) {
        if loop.inEventLoop { body() } else { loop.execute(body) }
    }

    /// Starts the handlers of the streams this read opened and did not also close. A stream the client resets
    /// in the same read (the rapid reset attack, CVE-2023-44487: HEADERS then RST_STREAM, over and over) so
    /// costs its parsing, not a context, a writer and a task that runs its interceptors and handler to no
    /// one, nor a deadline timer (every call has one: the server's `maxCallDuration` when the client sets
    /// none).
    private func launchPendingHandlers() {
        guard !pendingLaunches.isEmpty, let loop = context?.eventLoop else { return }
        for rpc in pendingLaunches {
            guard let call = rpc.call else { continue }
            rpc.call = nil
            guard rpc.state.isOpen else { continue }
            launch(rpc, head: call.head, route: call.route, on: loop)
        }
        pendingLaunches.removeAll(keepingCapacity: true)
    }

    /// A plain HTTP request: the handler's response headers, then its body pulled chunk by chunk under the
    /// same backpressure as gRPC messages, then END_STREAM without trailers.
    private func runPlain(_ rpc: ServerRPC, method: String, handler plainHTTP: any PlainHTTPHandler) {
        let loop = context.eventLoop
        let handler = NIOLoopBound(self, eventLoop: loop)
        let id = rpc.id
        rpc.state.open(.plain)
        // Small on purpose: plain requests need no token, so a peer that never reads must pin little memory.
        let gate = OutboundGate(highWater: Self.plainSendBufferSize, lowWater: Self.plainSendBufferSize / 4, budget: sendBudget)
        rpc.gate = gate
        let request = PlainHTTPRequest(
            method: method, path: rpc.headerFields.first { $0.name == ":path" }?.value ?? "",
            headers: rpc.headerFields.filter { !$0.name.hasPrefix(":") }
        )
        let logger = self.logger
        let handlers = self.handlers
        let stallTimeout = TimeAmount(configuration.plainHTTPStallTimeout)
        rpc.stallCheck = loop.scheduleRepeatedTask(initialDelay: stallTimeout, delay: stallTimeout) { _ in
            handler.value.checkPlainProgress(stream: id)
        }
        handlers.started()
        rpc.task = Task(executorPreference: handlerExecutor) {
            defer { handlers.finished() }
            let response = await plainHTTP.respond(to: request)
            let body = method == "HEAD" ? nil : response.body
            loop.execute { handler.value.sendPlainHeaders(stream: id, response, hasBody: body != nil) }
            guard let body else { return }
            do {
                while let chunk = try await body() {
                    guard !chunk.isEmpty else { continue }
                    if try gate.push(OutboundMessage(chunk, compressedFlag: nil)) { loop.execute { handler.value.takePending(stream: id) } }
                    try await gate.waitForRoom()
                }
                loop.execute { handler.value.endPlainBody(stream: id) }
            } catch {
                // Headers are out: all that is left is to cut the stream short.
                logger.debug("plain HTTP body failed", metadata: ["error": "\(error)"])
                loop.execute { handler.value.resetPlain(stream: id) }
            }
        }
    }

    private func sendPlainHeaders(stream: Int32, _ response: PlainHTTPResponse, hasBody: Bool) {
        guard let rpc = streams[stream], rpc.state.beginResponse() else { return }
        do {
            try session.submitHeaders(stream: stream, [(":status", String(response.status))] + response.headers, body: hasBody)
        } catch {
            session.resetStream(stream, code: .internalError)
        }
        if !hasBody { rpc.state.close() }
        scheduleFlush()
    }

    private func endPlainBody(stream: Int32) {
        guard let rpc = streams[stream], rpc.state.isOpen else { return }
        rpc.state.endBody()
        session.resumeData(stream: stream)
        scheduleFlush()
    }

    /// A plain response whose peer took none of its bytes since the last check while some wait is reset, so
    /// that what its body holds (an open file) is released; requests need no token, so a peer that never
    /// reads must not pin a file descriptor per stream until it disconnects.
    private func checkPlainProgress(stream: Int32) {
        guard let rpc = streams[stream] else { return }
        defer { rpc.plainSentAtCheck = rpc.plainSent }
        guard rpc.state.isOpen, rpc.plainSent == rpc.plainSentAtCheck, !rpc.outbox.isEmpty else { return }
        logger.debug("plain HTTP response reset: the peer took none of it", metadata: [
            "stall": "\(configuration.plainHTTPStallTimeout)",
        ])
        rpc.stallCheck?.cancel()
        rpc.abandon(RPCError(code: .cancelled, message: "the peer stopped reading the response"))
        session.resetStream(stream, code: .cancel)
        scheduleFlush()
    }

    private func resetPlain(stream: Int32) {
        guard let rpc = streams[stream] else { return }
        rpc.state.close()
        session.resetStream(stream, code: .internalError)
        scheduleFlush()
    }

    /// Called on the loop for a message the RPC's task wrote.
    /// A gRPC call's framed messages or a plain response's body chunks, from its task.
    private func takePending(stream: Int32) {
        guard let rpc = streams[stream], rpc.state.isOpen, let messages = rpc.gate?.takePending(), !messages.isEmpty else { return }
        if !rpc.state.isPlain { sendResponseHeadersIfNeeded(rpc) }
        for framed in messages { rpc.outbox.append(framed) }
        session.resumeData(stream: stream)
        scheduleFlush()
    }

    private func sendResponseHeadersIfNeeded(_ rpc: ServerRPC) {
        guard rpc.state.beginResponse() else { return }
        var headers = [(":status", "200"), ("content-type", "application/grpc"), ("grpc-accept-encoding", MessageEncoding.acceptHeader)]
        if let encoding = rpc.responseEncoding {
            headers.append(("grpc-encoding", encoding.rawValue))
        }
        headers += MetadataCoding.headers(for: rpc.responseMetadata?.takeInitial() ?? [:])
        do {
            try session.submitHeaders(stream: rpc.id, headers, body: true)
        } catch {
            session.resetStream(rpc.id, code: .internalError)
        }
    }

    /// The RPC's outcome: trailers after its messages, or a trailers-only response if it sent none.
    private func finish(stream: Int32, status: Status, trailers: Metadata, message: OutboundMessage?) {
        guard let rpc = streams[stream], rpc.state.isOpenRPC else { return }
        // Messages written whose loop task has not run yet (a handler on the loop ends before it does) go first.
        takePending(stream: stream)
        if let message {
            sendResponseHeadersIfNeeded(rpc)
            rpc.outbox.append(message)
            session.resumeData(stream: stream)
        }
        rpc.deadlineTimer?.cancel()
        rpc.gate?.close(Self.callEndedError)
        if rpc.state.finish(trailers: Self.statusFields(status, metadata: trailers)) {
            session.resumeData(stream: stream)
        } else {
            // Trailers-Only (gRPC PROTOCOL-HTTP2.md, "Responses"); initial metadata joins the trailers.
            var metadata = rpc.responseMetadata?.takeInitial() ?? [:]
            metadata.add(contentsOf: trailers)
            let headers = Self.statusFields(status, metadata: metadata, trailersOnly: true)
            do {
                try session.submitHeaders(stream: stream, headers, body: false)
            } catch {
                session.resetStream(stream, code: .internalError)
            }
        }
        scheduleFlush()
    }

    /// `grpc-status`, `grpc-message` when there is one, then `metadata`, in one array (after `:status` and
    /// `content-type` for a Trailers-Only response).
    private static func statusFields(_ status: Status, metadata: Metadata, trailersOnly: Bool = false) -> [(String, String)] {
        let custom = MetadataCoding.headers(for: metadata)
        var fields: [(String, String)] = []
        fields.reserveCapacity(4 + custom.count)
        if trailersOnly {
            fields.append((":status", "200"))
            fields.append(("content-type", "application/grpc"))
        }
        fields.append(("grpc-status", String(status.code.rawValue)))
        if !status.message.isEmpty { fields.append(("grpc-message", GRPCStatusMessage.encode(status.message))) }
        fields += custom
        return fields
    }

    /// Ends an RPC on the server's initiative (bad message, deadline): the handler is cancelled.
    private func fail(_ rpc: ServerRPC, _ status: Status) {
        guard rpc.state.isOpenRPC else { return }
        rpc.responseMetadata?.endedByTransport = status
        if rpc.call != nil {
            // Failed in the read that opened it: its handler never starts, so no interceptor sees the call.
            rpc.call = nil
            refusals?.refused(path: rpc.path, status: status, peer: peer)
        }
        rpc.task?.cancel()
        rpc.inbox?.finish(RPCError(code: status.code, message: status.message))
        finish(stream: rpc.id, status: status, trailers: [:], message: nil)
    }

    private func deadlineExpired(stream: Int32, serverLimit: Duration?) {
        guard let rpc = streams[stream] else { return }
        let message = serverLimit.map { "the call reached the server's limit of \($0.components.seconds) s" } ?? "deadline exceeded"
        fail(rpc, Status(code: .deadlineExceeded, message: message))
    }

    private func requestEnded(_ rpc: ServerRPC) {
        guard rpc.state.endRequest() else { return }
        // A call whose request ends before any byte of it came (a client may send none) gets its inbox now.
        let inbox = inbox(of: rpc)
        do {
            try rpc.inbound.deframer.finish()
        } catch {
            fail(rpc, Self.status(for: error))
            return
        }
        inbox.finish()
        // Nothing more can arrive on this stream: give its window back now rather than message by message.
        session.consume(stream: rpc.id, bytes: inbox.releaseCostsAtEnd())
    }

    private func giveBackWindow(stream: Int32) {
        guard let rpc = streams[stream], let inbox = rpc.inbox else { return }
        session.consume(stream: stream, bytes: inbox.takePendingCost())
        // The reader may have caught up with a message still arriving that could not be settled before.
        if rpc.state.isOpenRPC, !rpc.state.requestEnded { settlePartial(rpc) }
        scheduleFlush()
    }

    private func respondEarly(_ rpc: ServerRPC, httpStatus: Int, status: Status, listAcceptedEncodings: Bool = false) {
        if let refusals {
            refusals.refused(path: rpc.headerFields.first { $0.0 == ":path" }?.1 ?? "", status: status, peer: peer)
        }
        var headers = [(":status", String(httpStatus)), ("content-type", "application/grpc"),
                       ("grpc-status", String(status.code.rawValue))]
        if !status.message.isEmpty { headers.append(("grpc-message", GRPCStatusMessage.encode(status.message))) }
        if listAcceptedEncodings { headers.append(("grpc-accept-encoding", MessageEncoding.acceptHeader)) }
        do {
            try session.submitHeaders(stream: rpc.id, headers, body: false)
        } catch {
            session.resetStream(rpc.id, code: .internalError)
        }
    }

    private static func status(for error: MessageDeframer.Failure) -> Status {
        switch error {
        case .tooLarge(let length, let limit):
            Status(code: .resourceExhausted, message: "received message larger than max (\(length) vs. \(limit))")
        case .compressedWithoutEncoding:
            Status(code: .internal, message: "compressed flag set with identity or empty encoding")
        case .invalidFlag(let flag):
            Status(code: .internal, message: "invalid compressed flag \(flag) (only 0 and 1 are defined)")
        case .decompressionFailed:
            Status(code: .internal, message: "failed to decompress the request message")
        case .decompressedTooLarge(let limit):
            Status(code: .resourceExhausted, message: "received message after decompression larger than max (\(limit))")
        case .truncated:
            Status(code: .internal, message: "the request ended in the middle of a message")
        }
    }

    // MARK: Connection lifetime (grpc-go keepalive.ServerParameters; grpc/grpc doc/keepalive.md)

    /// Runs `body` on this handler after `delay`, as the connection's `timer` (replacing an earlier one).
    private func schedule(_ timer: LifetimeTimer, in delay: Duration, _ body: @escaping @Sendable (ServerConnectionHandler) -> Void) {
        guard let context else { return }
        schedule(timer, at: context.eventLoop.now + TimeAmount(delay), body)
    }

    private func schedule(_ timer: LifetimeTimer, at deadline: NIODeadline, _ body: @escaping @Sendable (ServerConnectionHandler) -> Void) {
        guard let context else { return }
        let handler = NIOLoopBound(self, eventLoop: context.eventLoop)
        lifetimeTimers[timer] = context.eventLoop.scheduleTask(deadline: deadline) { body(handler.value) }
    }

    /// Ends every call with `error` and closes the connection at once.
    private func close(abandoning error: RPCError) {
        for rpc in streams.values { rpc.abandon(error) }
        context?.close(promise: nil)
    }

    private func checkHandshake() {
        guard let context, context.channel.isActive, !session.receivedSettings else { return }
        logger.debug("no connection preface in time; closing", metadata: ["timeout": "\(configuration.handshakeTimeout)"])
        context.close(promise: nil)
    }

    private func checkIdle() {
        guard shutdown == .running, let context, let idle = configuration.maxConnectionIdle else { return }
        let now = context.eventLoop.now
        guard let since = idleSince else { return schedule(.idle, in: idle) { $0.checkIdle() } }
        let due = since + TimeAmount(idle)
        guard due <= now else { return schedule(.idle, at: due) { $0.checkIdle() } }
        logger.debug("idle connection; GOAWAY", metadata: ["idle": "\(idle)"])
        beginGracefulShutdown()
    }

    /// A header block (a request's HEADERS and CONTINUATION frames) still unfinished after `handshakeTimeout`:
    /// the peer is holding the connection (slowloris), close it.
    private func checkHeaderBlock() {
        lifetimeTimers[.headerBlock] = nil
        guard let context, context.channel.isActive, let started = headerBlockStartedAt else { return }
        let due = started + TimeAmount(configuration.handshakeTimeout)
        guard due <= context.eventLoop.now else { return schedule(.headerBlock, at: due) { $0.checkHeaderBlock() } }
        logger.debug("a header block unfinished for too long; closing", metadata: ["timeout": "\(configuration.handshakeTimeout)"])
        close(abandoning: RPCError(code: .cancelled, message: "the connection closed"))
    }

    /// After `keepalive.time` with nothing from the peer, a PING; nothing back within `keepalive.timeout`
    /// (an ACK or anything else): the connection is dead, close it.
    private func checkKeepalive() {
        guard let context, context.channel.isActive else { return }
        let keepalive = configuration.keepalive
        if let sent = keepalivePingSentAt {
            keepalivePingSentAt = nil
            if lastReadAt < sent {
                logger.debug("keepalive PING unanswered; closing", metadata: ["timeout": "\(keepalive.timeout)"])
                return close(abandoning: RPCError(code: .unavailable, message: "the connection is dead (keepalive)"))
            }
        }
        let now = context.eventLoop.now
        let due = lastReadAt + TimeAmount(keepalive.time)
        guard due <= now else { return schedule(.keepalive, at: due) { $0.checkKeepalive() } }
        keepalivePingSentAt = now
        session.submitPing(opaqueData: Self.keepalivePingData)
        flush()
        schedule(.keepalive, in: keepalive.timeout) { $0.checkKeepalive() }
    }

    /// Our keepalive PING (any fixed value: its ACK needs no matching, any read counts).
    private static let keepalivePingData: UInt64 = 0x6b65_6570_616c_6976

    // MARK: Graceful shutdown (gRPC proposal A9; nghttp2_submit_shutdown_notice)

    private func beginGracefulShutdown(grace: Duration? = nil) {
        guard shutdown == .running, let session, let context else { return }
        session.submitShutdownNotice()
        session.submitPing(opaqueData: Self.shutdownPingData)
        shutdown = .noticeSent
        flush()
        let handler = NIOLoopBound(self, eventLoop: context.eventLoop)
        // No PING ACK within a second: send the final GOAWAY anyway.
        context.eventLoop.scheduleTask(in: .seconds(1)) { handler.value.sendFinalGoAway() }
        context.eventLoop.scheduleTask(in: TimeAmount(grace ?? configuration.shutdownGracePeriod)) {
            handler.value.forceClose()
        }
    }

    /// Runs inside a session callback (the PING ACK) or from a timer: it only submits, and the write happens
    /// after the callback returns (nghttp2 must not be re-entered: nghttp2 programmers' guide, "Remarks").
    private func sendFinalGoAway() {
        guard shutdown == .noticeSent else { return }
        shutdown = .goAwaySent
        session.submitGoAway(lastStreamID: session.lastProcessedStreamID, code: .noError)
        scheduleFlush()
    }

    private func forceClose() {
        guard let context, context.channel.isActive else { return }
        logger.debug("grace period over; closing", metadata: ["rpc.open": "\(streams.count)"])
        close(abandoning: RPCError(code: .unavailable, message: "the server is shutting down"))
    }

    private static func describe(_ address: SocketAddress?) -> String {
        switch address {
        case .v4(let a)?: "ipv4:\(a.host):\(address?.port ?? 0)"
        case .v6(let a)?: "ipv6:[\(a.host)]:\(address?.port ?? 0)"
        case .unixDomainSocket?: "unix:\(address?.pathname ?? "")"
        case nil: "unknown"
        }
    }
}

/// What the connection's budget wakes: the handler, until it is removed from the pipeline. A strong
/// reference cleared then, not a weak one: a weak reference gives the handler a side table, and every retain
/// and release of it then takes the runtime's slow path (perf: about a tenth of a unary call's CPU).
private final class ServerConnectionLink {
    var handler: ServerConnectionHandler?
}

/// One stream's state, on the event loop.

final class ServerRPC {
    let id: Int32
    var state = ServerStreamState()
    var headerFields: [(name: String, value: String)] = []
    var headerListSize = 0
    var inbound: InboundMessages
    /// A gRPC call's request messages, for its handler (from the start of the call).
    var inbox: StreamInbox<[UInt8]>?
    var gate: OutboundGate?
    var responseMetadata: ResponseMetadata?
    var responseEncoding: MessageEncoding?
    var outbox = OutboundQueue()
    var task: Task<Void, Never>?
    /// The request's `:path`, once it runs.
    var path = ""
    /// The request's head and route, from its complete headers until its handler starts (``task``), at the
    /// end of the read.
    var call: (head: ServerRequestHead, route: RPCRoute)?
    /// The timer of the call's time limit, once the handler runs.
    var deadlineTimer: Scheduled<Void>?
    /// A plain HTTP body's bytes handed to nghttp2, and that count at the last stall check.
    var plainSent = 0
    var plainSentAtCheck = 0
    var stallCheck: RepeatedTask?

    init(id: Int32, maxMessageSize: Int) {
        self.id = id
        inbound = InboundMessages(maxMessageSize: maxMessageSize, encoding: nil)
    }

    /// The stream is gone (reset, connection lost, shutdown): stop the handler and its writers.
    func abandon(_ error: RPCError) {
        stallCheck?.cancel()
        call = nil
        guard state.isOpen || task != nil else { return }
        state.close()
        task?.cancel()
        inbox?.finish(error)
        gate?.close(error)
        deadlineTimer?.cancel()
    }
}

extension TimeAmount {
    init(_ duration: Duration) {
        let (seconds, attoseconds) = duration.components
        self = .nanoseconds(seconds.multipliedReportingOverflow(by: 1_000_000_000).overflow
            ? .max : seconds * 1_000_000_000 + attoseconds / 1_000_000_000)
    }
}

/// The strings a connection's last requests had for their longer header names and values (`:path`,
/// `content-type`, `user-agent`, `grpc-accept-encoding`…): a client sends the same ones on every call, and a
/// string of more than 15 UTF-8 bytes is allocated, so identical bytes reuse the string made before (three to
/// five allocations per call). Values of other fields are never kept: they may be credentials.
struct RecentHeaderStrings {
    private var strings: [String] = []
    private var next = 0
    private static let capacity = 8

    /// Fields whose values may be kept; names are always.
    static func mayKeep(_ name: String) -> Bool {
        switch name {
        case ":path", ":authority", "content-type", "user-agent", "te", "grpc-accept-encoding", "grpc-encoding": true
        default: false
        }
    }

    mutating func string(_ bytes: UnsafeRawBufferPointer) -> String {
        // Up to 15 bytes a string is held inline: nothing to save.
        guard bytes.count > 15 else { return String(decoding: bytes, as: UTF8.self) }
        for var kept in strings where kept.utf8.count == bytes.count {
            if kept.withUTF8({ $0.elementsEqual(bytes) }) { return kept }
        }
        let made = String(decoding: bytes, as: UTF8.self)
        if strings.count < Self.capacity {
            strings.append(made)
        } else {
            strings[next] = made
            next = (next + 1) % Self.capacity
        }
        return made
    }
}
