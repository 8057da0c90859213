import NIOCore

/// The output side both ends of a connection share, client and server: what their ``NGHTTP2Session`` has
/// to send leaves in one buffer per pass (nghttp2.h, `nghttp2_session_mem_send`: buffer up small chunks), at
/// once or once per event-loop turn however many ask. Owned by a connection handler, on its event loop.
/// A class: a flush runs nghttp2, whose callbacks may ask for another flush meanwhile, and a mutating method
/// of a value stored in the handler would hold exclusive access to it all along (a runtime trap).
final class SessionPump {
    private var flushScheduled = false

    /// Writes and flushes everything the session has to send; false when nothing could be written (no
    /// session or channel yet, the channel closed, or not writable: call again from
    /// `channelWritabilityChanged`). Throws nghttp2's error when the session failed: close the connection.
    @discardableResult
    func flush(_ session: NGHTTP2Session?, to context: ChannelHandlerContext?) throws -> Bool {
        flushScheduled = false
        guard let session, let context, context.channel.isActive, context.channel.isWritable else { return false }
        // Room for a unary call's three frames, so that they are not copied as the buffer grows; below
        // glibc's large-chunk size (1 KiB), whose allocation consolidates its free lists each time.
        var out = context.channel.allocator.buffer(capacity: 512)
        try session.send { out.writeBytes($0) }
        if out.readableBytes > 0 { context.writeAndFlush(NIOAny(out), promise: nil) }
        return true
    }

    /// Runs a flush later in this event-loop turn, once for all who ask before it runs: work arriving from
    /// several streams' tasks goes out in one write. `makeFlush` is called only when a flush is not already
    /// scheduled (callers ask many times per turn).
    func scheduleFlush(on loop: any EventLoop, _ makeFlush: () -> @Sendable () -> Void) {
        guard !flushScheduled else { return }
        flushScheduled = true
        loop.execute(makeFlush())
    }
}
