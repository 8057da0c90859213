import OpenSSLTLS

/// How a ``GRPCServer`` listens and what it allows. Defaults follow gRPC's (the 4 MiB receive limit of
/// `grpc_types.h` and grpc-go, `doc/keepalive.md`, PROTOCOL-HTTP2.md's header-size advice).
public struct GRPCServerConfiguration: Sendable {
    public var host: String
    public var port: Int
    /// TLS (ALPN `h2`) for every connection; nil: h2c with prior knowledge.
    public var tls: TLSServerCredentials?
    /// Largest request message accepted, after decompression too (default 4 MiB); larger: RESOURCE_EXHAUSTED.
    public var maxReceiveMessageSize = 4 << 20
    /// Largest request header list (name + value + 32 per field), advertised in SETTINGS; larger: RST_STREAM.
    public var maxHeaderListSize = 16 << 10
    public var maxConcurrentStreams: UInt32 = 1000
    /// Each stream's receive window; with the reader-paced WINDOW_UPDATEs it bounds what one stream buffers.
    public var streamWindowSize: UInt32 = 1 << 20
    /// The connection's receive window: request bytes not yet given back to the client fit in it.
    public var connectionWindowSize: Int32 = 16 << 20
    /// Request bytes a connection may hold beyond its window: those of messages larger than a stream's
    /// window, given back before the handler took the message so that it can arrive whole, and of messages
    /// queued when the client ended its stream. A message reserves its size here; one that does not fit waits
    /// for handlers to take theirs (a few may wait, then more are `RESOURCE_EXHAUSTED`). A connection thus holds
    /// at most `connectionWindowSize` plus this; one message of the maximum size always fits.
    public var maxConnectionBufferedBytes = 32 << 20
    /// A writer waits while more than this many response bytes of its stream wait to be sent.
    public var streamSendBufferSize = 1 << 20
    /// Response bytes a connection may queue across its streams (a client that opens many streams and reads
    /// none would otherwise pin `streamSendBufferSize` per stream). Beyond it each writer waits until its
    /// stream's queue is empty, so the connection holds at most this plus one message per stream.
    public var maxConnectionSendBufferedBytes = 32 << 20
    /// A plain HTTP response (``PlainHTTPHandler``) whose peer takes none of its bytes for between one and two
    /// of these is reset, releasing what its body holds (a download link's open file).
    public var plainHTTPStallTimeout: Duration = .seconds(30)
    /// Run each call's handler task on its connection's event loop (``EventLoopExecutor``), so that a call
    /// does not change threads unless it waits for work elsewhere; handlers must then not block (blocking
    /// work goes to threads of its own). False: Swift's global executor, for handlers that block.
    public var runsHandlersOnEventLoops = true
    /// Compress responses with what the client accepts (gzip preferred) unless a handler says otherwise.
    public var compressResponses = false
    public var keepalive = Keepalive()
    /// After a graceful shutdown begins, in-flight RPCs get this long before connections are closed.
    public var shutdownGracePeriod: Duration = .seconds(10)
    /// Open connections, in all and from one IP address; a connection over either is closed as it is accepted.
    public var maxConnections = 10_000
    public var maxConnectionsPerAddress = 1_000
    /// A connection whose client has not sent its preface and SETTINGS by then is closed (a half-sent preface
    /// would otherwise hold it forever); so is one whose request header block stays unfinished that long.
    public var handshakeTimeout: Duration = .seconds(10)
    /// A connection without an open stream for this long gets a graceful GOAWAY (grpc-go's
    /// `MAX_CONNECTION_IDLE`); nil keeps idle connections.
    public var maxConnectionIdle: Duration? = .seconds(3600)
    /// A connection this old (±10% jitter) gets a graceful GOAWAY, and is closed `maxConnectionAgeGrace` later
    /// (grpc-go's `MAX_CONNECTION_AGE` and `_GRACE`, to spread load after scaling); nil: no limit.
    public var maxConnectionAge: Duration?
    public var maxConnectionAgeGrace: Duration = .seconds(30)
    /// No call runs longer than this, with or without a deadline of its own (a longer or absent `grpc-timeout`
    /// is cut to it); the call then ends with DEADLINE_EXCEEDED naming the limit. nil: calls without a
    /// deadline run until they end.
    public var maxCallDuration: Duration?

    /// PING policy (grpc/grpc `doc/keepalive.md`): a client pinging more often than `minPingInterval`
    /// earns a strike; beyond `maxPingStrikes` it gets GOAWAY ENHANCE_YOUR_CALM `too_many_pings`.
    public struct Keepalive: Sendable {
        public var minPingInterval: Duration = .seconds(300)
        public var maxPingStrikes = 2
        /// Allow pings while no RPC is open (otherwise each one is a strike).
        public var permitWithoutCalls = false
        /// The server's own pings (grpc-go's `KEEPALIVE_TIME` / `_TIMEOUT`): after `time` without anything from
        /// the client it sends a PING, and closes the connection when nothing arrives within `timeout`.
        public var time: Duration = .seconds(7200)
        public var timeout: Duration = .seconds(20)

        public init() {}
    }

    public init(host: String = "127.0.0.1", port: Int = 50051) {
        self.host = host
        self.port = port
    }

    public static var defaults: Self { .init() }

    /// Starts from the defaults and applies `configure`.
    public static func defaults(configure: (inout Self) -> Void) -> Self {
        var c = Self()
        configure(&c)
        return c
    }
}
