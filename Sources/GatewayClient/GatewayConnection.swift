@_exported import GatewayProtos
@_exported import ProtoRuntime
@_exported import RPCCore
@_exported import OpenSSLTLS
@_exported import RPCHTTP2
@_exported import StandardProtos

/// A connection to a gateway (or any gRPC server) with typed clients for its services: what a Swift
/// microservice — and `gatewayctl` — uses to call it.
///
/// ```swift
/// let gateway = try GatewayConnection.connect(to: "gateway.internal:50051", token: StaticToken(idToken))
/// let me = try await gateway.users.getCurrentUser(.init())
/// ```
///
/// Every call carries the token (`authorization: Bearer …`) and the default deadline unless it sets its own;
/// a call refused as `UNAUTHENTICATED` is tried once more with a freshly refreshed token; idempotent reads
/// (`Get…`, `List…`, `Count…`, health checks) are retried with backoff when the server is `UNAVAILABLE`, within
/// the call's deadline. Nothing else is retried: not a write (it may have been done), not a stream.
public struct GatewayConnection: Sendable {
    public struct Options: Sendable {
        /// Each call's deadline when it sets none; nil: no deadline.
        public var defaultTimeout: Duration? = .seconds(30)
        /// Headers sent with every call.
        public var headers: [(name: String, value: String)] = []
        /// Attempts of an idempotent read that meets `UNAVAILABLE` (a refreshed token's second try not counted),
        /// all within the call's one deadline.
        public var readAttempts = 3
        public var transport = GRPCClientConfiguration.defaults

        public init() {}

        public static var defaults: Options { Options() }
    }

    public let rpc: RPCClient
    public let server: String
    private let transport: HTTP2ClientTransport

    public var users: Gateway_User_V1_UserService.Client { .init(rpc) }
    public var files: Gateway_File_V1_FileService.Client { .init(rpc) }
    public var events: Gateway_Event_V1_EventService.Client { .init(rpc) }
    public var health: Grpc_Health_V1_Health.Client { .init(rpc) }
    public var reflection: Grpc_Reflection_V1_ServerReflection.Client { .init(rpc) }

    /// Connects (lazily, on the first call) to `server` (`host:port`, `[v6]:port`). `interceptors` run inside
    /// the connection's own (they see the token and the deadline).
    public static func connect(
        to server: String, token: (any TokenSource)? = nil, options: Options = .defaults, interceptors: [any ClientInterceptor] = []
    ) throws -> GatewayConnection {
        let (host, port) = try Self.parse(server)
        let transport = HTTP2ClientTransport(host: host, port: port, configuration: options.transport)
        let defaults = CallDefaults(token: token, options: options)
        return GatewayConnection(rpc: RPCClient(transport: transport, interceptors: [defaults] + interceptors), server: server, transport: transport)
    }

    /// Closes the connection; calls still open end with `UNAVAILABLE`.
    public func close() async {
        await transport.close()
    }

    /// `host:port` or `[v6 address]:port`.
    public static func parse(_ server: String) throws -> (host: String, port: Int) {
        var host = Substring(server)
        var port = ""
        if host.hasPrefix("["), let close = host.firstIndex(of: "]") {
            let rest = host[host.index(after: close)...]
            guard rest.hasPrefix(":") else { throw AddressError(server: server) }
            port = String(rest.dropFirst())
            host = host[host.index(after: host.startIndex)..<close]
        } else if let colon = host.lastIndex(of: ":") {
            port = String(host[host.index(after: colon)...])
            host = host[..<colon]
        }
        guard !host.isEmpty, let number = Int(port), (1...65535).contains(number) else { throw AddressError(server: server) }
        return (String(host), number)
    }

    public struct AddressError: Error, CustomStringConvertible {
        public var server: String
        public var description: String { "\"\(server)\" is not host:port" }
    }
}

/// Where the bearer token of each call comes from.
public protocol TokenSource: Sendable {
    /// A token to send; `forceRefresh` after the server refused the last one as expired or invalid.
    func token(forceRefresh: Bool) async throws -> String
}

/// One token, as given.
public struct StaticToken: TokenSource {
    public let value: String

    public init(_ value: String) {
        self.value = value
    }

    public func token(forceRefresh: Bool) async throws -> String { value }
}

/// Adds the token, headers and default deadline to every call; refreshes a refused token once; retries
/// idempotent reads while the server is unavailable.
struct CallDefaults: ClientInterceptor {
    let token: (any TokenSource)?
    let options: GatewayConnection.Options

    /// Methods that change nothing, so a retry cannot do anything twice.
    static let idempotentReads: Set<String> = [
        "/gateway.user.v1.UserService/GetUser", "/gateway.user.v1.UserService/GetUserByEmail",
        "/gateway.user.v1.UserService/GetCurrentUser", "/gateway.user.v1.UserService/ListUsers",
        "/gateway.user.v1.UserService/CountUsers", "/gateway.user.v1.UserService/ListSessions",
        "/gateway.file.v1.FileService/GetFileInfo", "/gateway.file.v1.FileService/ListFiles",
        "/gateway.file.v1.FileService/GetDownloadUrl", "/gateway.event.v1.EventService/ListEvents",
        "/grpc.health.v1.Health/Check",
    ]

    /// The wait before a retry: random ("full jitter") up to 100 ms doubled per failure, capped at
    /// `maximumBackoff`, never less than `minimumBackoff` (grpc/proposal A6's exponential backoff).
    static let minimumBackoff = Duration.milliseconds(50)
    static let maximumBackoff = Duration.seconds(5)

    static func backoff(afterFailures failures: Int) -> Duration {
        let ceiling = min(5_000, 100 << min(max(failures, 1), 10))
        return .milliseconds(Int.random(in: 50...ceiling))
    }

    func intercept<R: Sendable>(
        _ call: ClientCall,
        next: (ClientCall, @Sendable (RPCClientStream) async throws -> R) async throws -> R,
        body: @escaping @Sendable (RPCClientStream) async throws -> R
    ) async throws -> R {
        var call = call
        // One deadline for the whole call, retries included: each attempt gets what is left of it.
        let deadline = (call.options.timeout ?? options.defaultTimeout).map { ContinuousClock.now + $0 }
        for (name, value) in options.headers { call.metadata.addString(value, forKey: name) }
        let idempotent = Self.idempotentReads.contains(call.descriptor.path) && call.descriptor.kind == .unary
        var refreshed = false
        var refreshNow = false
        var unavailable = 0
        while true {
            var attemptCall = call
            if let deadline { attemptCall.options.timeout = deadline - ContinuousClock.now }
            if let token {
                attemptCall.metadata.removeAll(forKey: "authorization")
                attemptCall.metadata.addString("Bearer \(try await token.token(forceRefresh: refreshNow))", forKey: "authorization")
                refreshNow = false
            }
            do {
                return try await next(attemptCall, body)
            } catch let error as RPCError where error.code == .unauthenticated && token != nil && !refreshed && call.descriptor.kind == .unary {
                // The token may have expired on the way: once more with a fresh one (the server did nothing).
                refreshed = true
                refreshNow = true
            } catch let error as RPCError where error.code == .unavailable && idempotent && unavailable + 1 < options.readAttempts {
                unavailable += 1
                let wait = Self.backoff(afterFailures: unavailable)
                // No retry that could only start after the deadline.
                if let deadline, ContinuousClock.now + wait >= deadline { throw error }
                try await Task.sleep(for: wait)
            }
        }
    }
}
