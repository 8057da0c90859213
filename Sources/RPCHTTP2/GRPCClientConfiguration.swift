import OpenSSLTLS

/// How an ``HTTP2ClientTransport`` connects and what it allows.
public struct GRPCClientConfiguration: Sendable {
    /// Largest response message accepted (default 4 MiB); larger: RESOURCE_EXHAUSTED.
    public var maxReceiveMessageSize = 4 << 20
    public var maxHeaderListSize = 16 << 10
    public var streamWindowSize: UInt32 = 1 << 20
    public var connectionWindowSize: Int32 = 16 << 20
    /// A request writer waits while more than this many bytes of its stream wait to be sent.
    public var streamSendBufferSize = 1 << 20
    public var connectTimeout: Duration = .seconds(10)
    public var userAgent = "gateway-swift-rpc/0.1"
    /// TLS (ALPN `h2`); nil: h2c with prior knowledge.
    public var tls: TLSContext?
    /// The name sent as SNI and checked against the server's certificate; nil: the host connected to.
    public var tlsServerName: String?

    public init() {}

    public static var defaults: Self { .init() }

    public static func defaults(configure: (inout Self) -> Void) -> Self {
        var c = Self()
        configure(&c)
        return c
    }
}
