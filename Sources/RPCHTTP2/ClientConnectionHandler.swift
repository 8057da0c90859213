import NIOCore
import RPCCore
import Synchronization

/// One client connection: the same engine as the server's (an ``NGHTTP2Session``, on the event loop), in
/// client mode. Streams are opened and fed by ``HTTP2ClientTransport`` through `execute`.
final class ClientConnectionHandler: ChannelInboundHandler, NGHTTP2SessionDelegate {
    typealias InboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    private let configuration: GRPCClientConfiguration
    private var session: NGHTTP2Session!
    private var context: ChannelHandlerContext!
    private var streams: [Int32: ClientStream] = [:]
    private let pump = SessionPump()
    /// No new streams after GOAWAY or close.
    private(set) var isClosing = false
    let closing: @Sendable () -> Void

    init(configuration: GRPCClientConfiguration, closing: @escaping @Sendable () -> Void) {
        self.configuration = configuration
        self.closing = closing
    }

    func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
        do {
            session = try NGHTTP2Session(role: .client, settings: .init(
                initialWindowSize: configuration.streamWindowSize,
                connectionWindowSize: configuration.connectionWindowSize,
                maxHeaderListSize: UInt32(configuration.maxHeaderListSize)
            ), delegate: self)
        } catch {
            context.close(promise: nil)
            return
        }
        if context.channel.isActive { flush() }
    }

    func channelActive(context: ChannelHandlerContext) {
        flush()
        context.fireChannelActive()
    }

    /// The context refers back to this handler: let go of it, or the two keep each other alive.
    func handlerRemoved(context: ChannelHandlerContext) {
        self.context = nil
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let buffer = unwrapInboundIn(data)
        do {
            try buffer.withUnsafeReadableBytes { try session.receive($0) }
        } catch {
            flush()
            context.close(promise: nil)
            return
        }
        flush()
    }

    func channelWritabilityChanged(context: ChannelHandlerContext) {
        if context.channel.isWritable { flush() }
        context.fireChannelWritabilityChanged()
    }

    func channelInactive(context: ChannelHandlerContext) {
        markClosing()
        for stream in streams.values {
            stream.end(Status(code: .unavailable, message: "the connection closed"), trailers: [:])
        }
        streams.removeAll()
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        context.close(promise: nil)
    }

    private func markClosing() {
        guard !isClosing else { return }
        isClosing = true
        closing()
    }

    private func flush() {
        do {
            try pump.flush(session, to: context)
        } catch {
            context?.close(promise: nil)
        }
    }

    private func scheduleFlush() {
        guard let context else { return }
        pump.scheduleFlush(on: context.eventLoop) {
            let handler = NIOLoopBound(self, eventLoop: context.eventLoop)
            return { handler.value.flush() }
        }
    }

    // MARK: Streams (called on the event loop by the transport)

    func open(_ headers: [(String, String)], stream: ClientStream) throws -> Int32 {
        guard !isClosing else { throw RPCError(code: .unavailable, message: "the connection is closing") }
        let id = try session.submitRequest(headers)
        stream.id = id
        streams[id] = stream
        if let timeout = stream.timeout {
            let handler = NIOLoopBound(self, eventLoop: context.eventLoop)
            stream.deadlineTimer = context.eventLoop.scheduleTask(in: TimeAmount(timeout)) {
                handler.value.cancel(stream: id, status: Status(code: .deadlineExceeded, message: "deadline exceeded"))
            }
        }
        scheduleFlush()
        return id
    }

    func takePending(stream id: Int32) {
        guard let stream = streams[id], !stream.requestEnded else { return }
        let messages = stream.gate.takePending()
        guard !messages.isEmpty else { return }
        for framed in messages { stream.outbox.append(framed) }
        session.resumeData(stream: id)
        scheduleFlush()
    }

    func endRequest(stream id: Int32) {
        guard let stream = streams[id], !stream.requestEnded else { return }
        stream.requestEnded = true
        session.resumeData(stream: id)
        scheduleFlush()
    }

    /// RST_STREAM(CANCEL) (gRPC PROTOCOL-HTTP2.md, "Client Cancellation"); the caller sees `status`.
    func cancel(stream id: Int32, status: Status) {
        guard let stream = streams[id] else { return }
        stream.end(status, trailers: [:])
        session.resetStream(id, code: .cancel)
        scheduleFlush()
    }

    func giveBackWindow(stream id: Int32) {
        guard let stream = streams[id] else { return }
        session.consume(stream: id, bytes: stream.inbox.takePendingCost())
        if !stream.finished { settlePartial(stream) }
        scheduleFlush()
    }

    /// Gives back the bytes of a response message still arriving once the reader has taken everything
    /// queued (a client trusts its server with no budget beyond the window and one message per stream).
    private func settlePartial(_ stream: ClientStream) {
        let inbox = stream.inbox
        session.consume(stream: stream.id, bytes: stream.inbound.settle(budget: nil) { inbox.readerCaughtUp() })
    }

    // MARK: Session events

    func beginHeaders(stream: Int32) {
        streams[stream]?.headerFields = []
        streams[stream]?.headerListSize = 0
    }

    func header(stream id: Int32, name: UnsafeRawBufferPointer, value: UnsafeRawBufferPointer) -> HeaderVerdict {
        guard let stream = streams[id] else { return .accept }
        stream.headerListSize += name.count + value.count + 32
        guard stream.headerListSize <= configuration.maxHeaderListSize else {
            stream.end(Status(code: .internal, message: "response header list larger than \(configuration.maxHeaderListSize) bytes"), trailers: [:])
            session.resetStream(id, code: .cancel)
            return .refuseStream
        }
        stream.headerFields.append((String(decoding: name, as: UTF8.self), String(decoding: value, as: UTF8.self)))
        return .accept
    }

    func headersComplete(stream id: Int32, endStream: Bool) {
        guard let stream = streams[id] else { return }
        let fields = stream.headerFields
        stream.headerFields = []
        if !stream.responseHeadersReceived {
            stream.responseHeadersReceived = true
            let http = fields.first { $0.name == ":status" }?.value
            if endStream {
                // Trailers-only.
                stream.end(Self.status(from: fields, httpStatus: http), trailers: Self.metadata(from: fields))
                return
            }
            guard http == "200" else {
                cancel(stream: id, status: Status(code: Self.code(forHTTPStatus: http), message: "HTTP status \(http ?? "missing")"))
                return
            }
            let contentType = fields.first { $0.name == "content-type" }?.value ?? ""
            guard ServerRequestHead.isGRPCContentType(contentType) else {
                cancel(stream: id, status: Status(code: .unknown, message: "invalid content-type \"\(contentType)\""))
                return
            }
            let encoding = fields.first { $0.name == "grpc-encoding" }.flatMap { MessageEncoding(rawValue: $0.value) }
            stream.inbound = InboundMessages(maxMessageSize: configuration.maxReceiveMessageSize, encoding: encoding)
            stream.inbox.push(.init(element: .metadata(Self.metadata(from: fields)), cost: 0))
        } else if endStream {
            do {
                try stream.inbound.deframer.finish()
            } catch {
                stream.end(Status(code: .internal, message: "the response ended in the middle of a message"), trailers: [:])
                return
            }
            stream.end(Self.status(from: fields, httpStatus: "200"), trailers: Self.metadata(from: fields))
        }
    }

    func data(stream id: Int32, bytes: UnsafeRawBufferPointer) {
        guard let stream = streams[id], !stream.finished else {
            session.consume(stream: id, bytes: bytes.count)
            return
        }
        do {
            try stream.inbound.receive(bytes) { message, cost, _ in
                stream.inbox.push(.init(element: .message(message), cost: cost))
            }
            settlePartial(stream)
        } catch {
            let status = switch error {
            case .tooLarge(let length, let limit):
                Status(code: .resourceExhausted, message: "received message larger than max (\(length) vs. \(limit))")
            case .decompressedTooLarge(let limit):
                Status(code: .resourceExhausted, message: "received message after decompression larger than max (\(limit))")
            default:
                Status(code: .internal, message: "invalid response message framing")
            }
            cancel(stream: id, status: status)
        }
    }

    func dataEnded(stream: Int32) {
        // A response ends with trailers, never with DATA: if it does, the trailers are missing.
        guard let stream = streams[stream], !stream.finished else { return }
        stream.end(Status(code: .internal, message: "the server ended the stream without trailers"), trailers: [:])
    }

    func streamClosed(stream id: Int32, errorCode: UInt32) {
        guard let stream = streams.removeValue(forKey: id) else { return }
        stream.deadlineTimer?.cancel()
        stream.gate.close(RPCError(code: .cancelled, message: "the stream is closed"))
        if !stream.finished {
            stream.end(Status(code: Self.code(forResetCode: errorCode), message: "the stream was reset (HTTP/2 error \(errorCode))"), trailers: [:])
        }
        session.consume(stream: id, bytes: stream.inbox.releaseAll().window + stream.inbound.abandon().window)
    }

    func endStreamHeadersSent(stream: Int32) {}

    func readData(stream id: Int32, into buffer: UnsafeMutableRawBufferPointer) -> NGHTTP2Session.DataReadResult {
        guard let stream = streams[id] else { return .end(0, trailers: nil) }
        let written = stream.outbox.drain(into: buffer)
        if written > 0 { stream.gate.drained(written) }
        if stream.outbox.isEmpty, stream.requestEnded {
            return .end(written, trailers: nil)  // gRPC PROTOCOL-HTTP2.md, "Requests": END_STREAM on the last DATA frame
        }
        return written > 0 ? .bytes(written) : .deferred
    }

    func goAwayReceived(lastStreamID: Int32, errorCode: UInt32) {
        // gRPC PROTOCOL-HTTP2.md, "GOAWAY Frame": streams above the last id were not processed; nghttp2 closes them with REFUSED_STREAM.
        markClosing()
    }

    func pingAckReceived(opaqueData: UInt64) {}
    func pingReceived() {}

    // MARK: Mapping

    static func metadata(from fields: [(name: String, value: String)]) -> Metadata {
        var metadata = Metadata()
        for (name, value) in fields where !MetadataCoding.isReserved(name) {
            try? MetadataCoding.add(name: name, value: value, to: &metadata)
        }
        return metadata
    }

    static func status(from fields: [(name: String, value: String)], httpStatus: String?) -> Status {
        guard let raw = fields.first(where: { $0.name == "grpc-status" })?.value, let code = Int(raw) else {
            // No grpc-status: the client-side HTTP mapping (doc/http-grpc-status-mapping.md).
            return Status(code: code(forHTTPStatus: httpStatus), message: "no grpc-status; HTTP status \(httpStatus ?? "missing")")
        }
        let message = fields.first { $0.name == "grpc-message" }.map { GRPCStatusMessage.decode($0.value) } ?? ""
        return Status(code: StatusCode(rawValue: code), message: message)
    }

    static func code(forHTTPStatus status: String?) -> StatusCode {
        switch status {
        case "400", "431": .internal
        case "401": .unauthenticated
        case "403": .permissionDenied
        case "404": .unimplemented
        case "429", "502", "503", "504": .unavailable
        default: .unknown
        }
    }

    static func code(forResetCode code: UInt32) -> StatusCode {
        switch NGHTTP2Session.ErrorCode(rawValue: code) {
        case .refusedStream?: .unavailable
        case .cancel?: .cancelled
        case .enhanceYourCalm?: .resourceExhausted
        case .inadequateSecurity?: .permissionDenied
        default: .internal
        }
    }
}

/// One client stream's state, on the event loop (``inbox`` and ``gate`` are shared with the caller's task).
final class ClientStream {
    var id: Int32 = 0
    let inbox: StreamInbox<ClientResponsePart>
    let gate: OutboundGate
    let timeout: Duration?
    var deadlineTimer: Scheduled<Void>?
    var headerFields: [(name: String, value: String)] = []
    var headerListSize = 0
    var responseHeadersReceived = false
    var inbound = InboundMessages(maxMessageSize: 0, encoding: nil)
    var outbox = OutboundQueue()
    var requestEnded = false
    private(set) var finished = false

    init(inbox: StreamInbox<ClientResponsePart>, gate: OutboundGate, timeout: Duration?) {
        self.inbox = inbox
        self.gate = gate
        self.timeout = timeout
    }

    /// Delivers the final status (once).
    func end(_ status: Status, trailers: Metadata) {
        guard !finished else { return }
        finished = true
        deadlineTimer?.cancel()
        inbox.push(.init(element: .status(status, trailers: trailers), cost: 0))
        inbox.finish()
        gate.close(RPCError(code: status.code == .ok ? .cancelled : status.code, message: "the call has ended", cause: CallEndedError()))
    }
}
