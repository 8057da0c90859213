import Synchronization

/// A server's TLS context, replaceable while it serves: ``reload()`` re-reads the files of its configuration;
/// new connections use the new context and open ones keep theirs. A file that does not load leaves the
/// current context in place.
public final class TLSServerCredentials: Sendable {
    public let configuration: TLSServerConfiguration
    /// Told of every handshake, from the connection's event loop (for metrics).
    public let onHandshake: (@Sendable (Result<TLSConnectionInfo, TLSError>) -> Void)?
    private let context: Mutex<TLSContext>

    public init(
        _ configuration: TLSServerConfiguration,
        onHandshake: (@Sendable (Result<TLSConnectionInfo, TLSError>) -> Void)? = nil
    ) throws {
        self.configuration = configuration
        self.onHandshake = onHandshake
        context = Mutex(try TLSContext.server(configuration))
    }

    /// The context that new connections get.
    public var current: TLSContext { context.withLock { $0 } }

    /// Loads the files again; throws (keeping the current context) when they do not make a valid context.
    @discardableResult
    public func reload() throws -> TLSContext {
        let fresh = try TLSContext.server(configuration)
        context.withLock { $0 = fresh }
        return fresh
    }
}
