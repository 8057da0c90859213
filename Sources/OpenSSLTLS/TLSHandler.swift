import NIOCore

/// TLS for one NIO channel, server or client side: ciphertext in and out of the socket, plaintext to and
/// from the handlers after it. Writes made before the handshake ends wait for it (HTTP/2 sends its preface and
/// SETTINGS at once). When the handshake ends, a ``TLSConnectionInfo`` goes down the pipeline as a user
/// event; a failure goes down as a ``TLSError`` (`errorCaught`) and the channel closes, after the alert.
///
/// Backpressure is NIO's: ciphertext is written as the plaintext is, so the channel's writability follows
/// what waits in the socket, and reads happen only when the handlers after this one ask NIO to read.
public final class TLSHandler: ChannelDuplexHandler {
    public typealias InboundIn = ByteBuffer
    public typealias InboundOut = ByteBuffer
    public typealias OutboundIn = ByteBuffer
    public typealias OutboundOut = ByteBuffer

    private enum State {
        case handshaking, open, closed
    }

    private let connection: TLSConnection
    private let onHandshake: (@Sendable (Result<TLSConnectionInfo, TLSError>) -> Void)?
    private var state = State.handshaking
    /// close_notify has been sent (a half-close): reads go on, writes fail as on a half-closed socket.
    private var outputClosed = false
    /// Plaintext written before the handshake ended (sent, flushed, as soon as it ends).
    private var waiting: [(ByteBuffer, EventLoopPromise<Void>?)] = []
    /// Promises of plaintext already encrypted, completed with the write of the ciphertext that carries it.
    private var unflushed: [EventLoopPromise<Void>] = []
    private var handshake: EventLoopPromise<TLSConnectionInfo>?
    /// Plaintext is handed on in buffers of up to this many bytes (two full TLS records).
    private static let readChunk = 32 << 10
    /// OpenSSL's record buffers are freed once the connection has been quiet this long, so that an idle
    /// connection does not hold them; freeing them after every record (`SSL_MODE_RELEASE_BUFFERS`) cost a busy
    /// connection a tenth of its throughput in allocations.
    public static let quietInterval = TimeAmount.seconds(2)
    /// Records read or written since the quiet check was scheduled, and that check.
    private var traffic = 0
    private var quietCheck: Scheduled<Void>?
    /// How many times the record buffers were freed (for tests).
    private(set) var buffersReleased = 0

    /// `serverName` (client side) is sent as SNI and checked against the server's certificate.
    public init(
        context: TLSContext, serverName: String? = nil,
        onHandshake: (@Sendable (Result<TLSConnectionInfo, TLSError>) -> Void)? = nil
    ) throws {
        connection = try TLSConnection(context: context, serverName: serverName)
        self.onHandshake = onHandshake
    }

    /// Succeeds when the handshake ends, fails with its ``TLSError`` (or when the channel closes before).
    /// Set once the handler is in a pipeline.
    public private(set) var handshakeCompleted: EventLoopFuture<TLSConnectionInfo>?

    public func handlerAdded(context: ChannelHandlerContext) {
        let promise = context.eventLoop.makePromise(of: TLSConnectionInfo.self)
        handshake = promise
        handshakeCompleted = promise.futureResult
        if context.channel.isActive, !connection.context.isServer { advance(context: context) }
    }

    public func channelActive(context: ChannelHandlerContext) {
        context.fireChannelActive()
        // The client speaks first (ClientHello); the server waits for it.
        if !connection.context.isServer { advance(context: context) }
    }

    public func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        guard state != .closed else { return }
        unwrapInboundIn(data).withUnsafeReadableBytes { connection.receive($0) }
        advance(context: context)
        noteTraffic(context: context)
    }

    public func channelInactive(context: ChannelHandlerContext) {
        // Also after close(), which marks the handler closed before the channel goes inactive.
        if handshake != nil { handshakeEnded(.failure(TLSError(.handshake, "the connection closed"))) }
        state = .closed
        failWaiting(ChannelError.ioOnClosedChannel)
        quietCheck?.cancel()
        context.fireChannelInactive()
    }

    public func handlerRemoved(context: ChannelHandlerContext) {
        if handshake != nil { handshakeEnded(.failure(TLSError(.handshake, "the handler was removed"))) }
        failWaiting(ChannelError.ioOnClosedChannel)
        quietCheck?.cancel()
    }

    public func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        // After close(mode: .output) (HTTP/2's final GOAWAY, then a late PING's ACK): refused as a half-closed
        // socket refuses it, not as a TLS failure that would close the connection at once.
        if outputClosed {
            promise?.fail(ChannelError.outputClosed)
            return
        }
        switch state {
        case .handshaking:
            waiting.append((unwrapOutboundIn(data), promise))
        case .open:
            encrypt(unwrapOutboundIn(data), promise: promise, context: context)
            noteTraffic(context: context)
        case .closed:
            promise?.fail(ChannelError.ioOnClosedChannel)
        }
    }

    public func flush(context: ChannelHandlerContext) {
        // Before the handshake ends, what waits goes out when it ends.
        if state != .handshaking { sendOutput(context: context) }
    }

    public func close(context: ChannelHandlerContext, mode: CloseMode, promise: EventLoopPromise<Void>?) {
        if state == .open, mode != .input, !outputClosed {
            connection.shutdown()
            sendOutput(context: context)
            outputClosed = true
        }
        if mode == .all {
            state = .closed
            failWaiting(ChannelError.ioOnClosedChannel)
        }
        context.close(mode: mode, promise: promise)
    }

    // MARK: -

    /// Runs the handshake as far as the input allows, then decrypts what there is.
    private func advance(context: ChannelHandlerContext) {
        if state == .handshaking {
            switch connection.handshake() {
            case .done:
                let info = connection.info()
                guard connection.context.isServer || info.alpn == "h2" else {
                    fail(TLSError(.handshake, "the server did not agree to HTTP/2 (ALPN h2)"), context: context)
                    return
                }
                state = .open
                // What waited (HTTP/2's preface and SETTINGS) goes first, before anyone told of the handshake
                // can write.
                let plaintext = waiting
                waiting = []
                for (buffer, promise) in plaintext { encrypt(buffer, promise: promise, context: context) }
                handshakeEnded(.success(info))
                context.fireUserInboundEventTriggered(info)
            case .wantsInput:
                sendOutput(context: context)
                return
            case .closedByPeer:
                fail(TLSError(.handshake, "the peer closed the connection"), context: context)
                return
            case .failed(let error):
                fail(error, context: context)
                return
            }
        }
        decrypt(context: context)
        sendOutput(context: context)
    }

    private func decrypt(context: ChannelHandlerContext) {
        // Sized to what arrived (plaintext is never longer than its ciphertext): a 32 KiB buffer for every
        // small read cost glibc a consolidation of its free lists each time (perf: ~4% of a unary RPC), and
        // so does any block of 1 KiB or more, glibc's large-chunk size: small reads get 512 bytes.
        func buffer() -> ByteBuffer {
            context.channel.allocator.buffer(capacity: min(Self.readChunk, max(connection.pendingInput, 512)))
        }
        var plaintext = buffer()
        while state == .open {
            if plaintext.writableBytes == 0 {
                context.fireChannelRead(wrapInboundOut(plaintext))
                plaintext = buffer()
            }
            var outcome = TLSConnection.Outcome.done
            plaintext.writeWithUnsafeMutableBytes(minimumWritableBytes: 0) { space in
                var count = 0
                outcome = connection.read(into: space, count: &count)
                return count
            }
            switch outcome {
            case .done:
                continue
            case .wantsInput:
                if plaintext.readableBytes > 0 { context.fireChannelRead(wrapInboundOut(plaintext)) }
                return
            case .closedByPeer:
                // close_notify: what came before it is complete; answer with ours and close.
                if plaintext.readableBytes > 0 { context.fireChannelRead(wrapInboundOut(plaintext)) }
                close(context: context, mode: .all, promise: nil)
                return
            case .failed(let error):
                fail(error, context: context)
                return
            }
        }
    }

    private func encrypt(_ buffer: ByteBuffer, promise: EventLoopPromise<Void>?, context: ChannelHandlerContext) {
        switch buffer.withUnsafeReadableBytes({ connection.write($0) }) {
        case .done:
            if let promise { unflushed.append(promise) }
        case .failed(let error):
            promise?.fail(error)
            fail(error, context: context)
        case .wantsInput, .closedByPeer:
            // Not with memory BIOs and no renegotiation; were it to happen, the bytes did not go.
            let error = TLSError(.write, "OpenSSL did not take the bytes")
            promise?.fail(error)
            fail(error, context: context)
        }
    }

    /// Writes and flushes the ciphertext OpenSSL has produced (handshake messages, records, alerts, tickets).
    private func sendOutput(context: ChannelHandlerContext) {
        guard connection.hasOutput || !unflushed.isEmpty else { return }
        var ciphertext = context.channel.allocator.buffer(capacity: 0)
        connection.drainOutput(into: &ciphertext)
        var promise: EventLoopPromise<Void>?
        if !unflushed.isEmpty {
            let promises = unflushed
            unflushed = []
            promise = context.eventLoop.makePromise()
            promise!.futureResult.whenComplete { result in promises.forEach { $0.completeWith(result) } }
        }
        if ciphertext.readableBytes > 0 {
            context.writeAndFlush(wrapOutboundOut(ciphertext), promise: promise)
        } else {
            promise?.succeed()
        }
    }

    private func fail(_ error: TLSError, context: ChannelHandlerContext) {
        if handshake != nil { handshakeEnded(.failure(error)) }
        state = .closed
        sendOutput(context: context)  // the alert that tells the peer why
        failWaiting(error)
        context.fireErrorCaught(error)
        context.close(promise: nil)
    }

    /// Counts a read or a write, and makes sure a quiet check will follow.
    private func noteTraffic(context: ChannelHandlerContext) {
        traffic &+= 1
        if quietCheck == nil, state == .open { scheduleQuietCheck(context: context) }
    }

    private func scheduleQuietCheck(context: ChannelHandlerContext) {
        let bound = NIOLoopBound((handler: self, context: context), eventLoop: context.eventLoop)
        let seen = traffic
        quietCheck = context.eventLoop.scheduleTask(in: Self.quietInterval) {
            bound.value.handler.quietCheckFired(trafficWhenScheduled: seen, context: bound.value.context)
        }
    }

    /// Nothing moved since the check was scheduled: free the record buffers (a record half received keeps
    /// them, and is checked again). Otherwise look again later; after freeing, the next record schedules it.
    private func quietCheckFired(trafficWhenScheduled: Int, context: ChannelHandlerContext) {
        quietCheck = nil
        guard state == .open else { return }
        if traffic == trafficWhenScheduled, connection.releaseBuffers() {
            buffersReleased += 1
        } else {
            scheduleQuietCheck(context: context)
        }
    }

    private func handshakeEnded(_ result: Result<TLSConnectionInfo, TLSError>) {
        onHandshake?(result)
        handshake?.completeWith(result.mapError { $0 })
        handshake = nil
    }

    private func failWaiting(_ error: any Error) {
        let plaintext = waiting
        waiting = []
        for (_, promise) in plaintext { promise?.fail(error) }
        let promises = unflushed
        unflushed = []
        for promise in promises { promise.fail(error) }
    }
}
