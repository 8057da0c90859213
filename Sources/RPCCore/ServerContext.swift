import Synchronization

/// What a handler knows about the call it serves, and where it puts response metadata. Cancellation is the
/// task's: a handler's task is cancelled when the client resets the stream, the deadline passes or the
/// connection goes away.
public struct ServerContext: Sendable {
    public let descriptor: MethodDescriptor
    /// The request's custom metadata (reserved and HTTP/2 headers removed).
    public let requestMetadata: Metadata
    /// The remote address, e.g. `ipv4:127.0.0.1:50000`, or `in-process`.
    public let peer: String
    /// When the client stops waiting; the transport cancels the handler then.
    public let deadline: ContinuousClock.Instant?
    /// Metadata sent back: initial metadata with the first response, trailing metadata with the status.
    public let responseMetadata: ResponseMetadata
    /// The request's `grpc-encoding` (e.g. `gzip`), nil when its messages are not compressed.
    public let requestEncoding: String?
    /// The `:authority` the client addressed (host and port), when the transport has one.
    public let authority: String?
    /// The client's certificate, verified by the transport against the configured roots (mutual TLS).
    public let clientCertificate: ClientCertificate?
    /// Values interceptors attached for the handler (e.g. the authenticated principal).
    public var values = ContextValues()

    public init(
        descriptor: MethodDescriptor,
        requestMetadata: Metadata,
        peer: String,
        deadline: ContinuousClock.Instant?,
        responseMetadata: ResponseMetadata = ResponseMetadata(),
        requestEncoding: String? = nil,
        authority: String? = nil,
        clientCertificate: ClientCertificate? = nil
    ) {
        self.authority = authority
        self.clientCertificate = clientCertificate
        self.descriptor = descriptor
        self.requestMetadata = requestMetadata
        self.peer = peer
        self.deadline = deadline
        self.responseMetadata = responseMetadata
        self.requestEncoding = requestEncoding
    }
}

/// Response metadata a handler sets while it runs; shared with the transport, which sends it.
public final class ResponseMetadata: Sendable {
    private struct State {
        var initial = Metadata()
        var trailing = Metadata()
        var initialSent = false
        var compress: Bool?
        var endedByTransport: Status?
    }

    private let state = Mutex(State())

    public init() {}

    /// Adds initial metadata; it goes out with the response headers, so only before the first message.
    public func addInitial(_ metadata: Metadata) throws {
        try state.withLock {
            guard !$0.initialSent else {
                throw RPCError(code: .internal, message: "initial metadata set after the response headers were sent")
            }
            $0.initial.add(contentsOf: metadata)
        }
    }

    public func addTrailing(_ metadata: Metadata) {
        state.withLock { $0.trailing.add(contentsOf: metadata) }
    }

    /// Whether the messages written from now on are compressed (with a coding the client accepts); nil
    /// leaves it to the server's configuration. Takes effect message by message.
    public var compressMessages: Bool? {
        get { state.withLock { $0.compress } }
        set { state.withLock { $0.compress = newValue } }
    }

    /// For transports: the initial metadata, marking it sent.
    public func takeInitial() -> Metadata {
        state.withLock {
            $0.initialSent = true
            return $0.initial
        }
    }

    /// For transports: the trailing metadata set so far.
    public var trailing: Metadata {
        state.withLock { $0.trailing }
    }

    /// The status the transport ended the call with on its own (a bad request message, the deadline), nil
    /// when the handler's outcome is the status. Set before the handler is cancelled, so whatever observes
    /// the call reports what the client was sent, not the cancellation.
    public var endedByTransport: Status? {
        get { state.withLock { $0.endedByTransport } }
        set { state.withLock { $0.endedByTransport = newValue } }
    }
}

/// A client certificate that the transport verified: who the peer is under mutual TLS.
public struct ClientCertificate: Sendable, Equatable {
    /// RFC 2253 form, e.g. `CN=payments,O=Example`.
    public var subject: String
    /// `DNS:…`, `URI:…` (e.g. a SPIFFE ID), `email:…`, `IP:…`.
    public var subjectAlternativeNames: [String]

    public init(subject: String, subjectAlternativeNames: [String]) {
        self.subject = subject
        self.subjectAlternativeNames = subjectAlternativeNames
    }
}
