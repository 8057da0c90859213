import ArgumentParser
import Foundation
import GatewayClient

enum OutputFormat: String, ExpressibleByArgument, CaseIterable, Sendable {
    /// Indented proto3 JSON for people.
    case text
    /// Proto3 JSON, one object per line (JSON lines for streams).
    case json
    /// Aligned columns for lists (like text for single messages).
    case table
}

/// The options every command takes. Each comes from its flag, else its environment variable, else the config
/// file (`~/.config/gatewayctl/config.json`), else its default.
struct GlobalOptions: ParsableArguments {
    @Option(help: ArgumentHelp("The gateway, host:port (env GATEWAY_SERVER; default 127.0.0.1:50051).", valueName: "host:port"))
    var server: String?

    @Option(help: "Bearer token to send (env GATEWAY_TOKEN; default: the credentials saved by `login`).")
    var token: String?

    @Option(help: "Read the bearer token from this file.")
    var tokenFile: String?

    @Option(help: "Seconds each call may take (default 30, or config.json's timeout); given here, it bounds streams (upload, download, subscribe, --watch) too.")
    var timeout: Double?

    @Option(name: [.customShort("H"), .customLong("header")], help: ArgumentHelp("Send this header with each call (repeatable).", valueName: "name=value"))
    var headers: [String] = []

    @Option(help: "text (indented JSON), json (one object per line) or table (columns for lists).")
    var output: OutputFormat?

    @Flag(name: .customShort("v"), help: "Print request headers (tokens redacted), response headers and trailers on stderr.")
    var verbose = false

    @Flag(help: "Connect over TLS, checking the server's certificate against the system's roots or --ca-cert (env GATEWAY_TLS=1).")
    var tls = false

    @Option(help: ArgumentHelp("PEM roots to trust instead of the system's; implies --tls (env GATEWAY_CA_CERT).", valueName: "file"))
    var caCert: String?

    @Option(help: "The name sent as SNI and checked against the certificate (default: the host of --server); implies --tls.")
    var serverName: String?

    @Option(help: ArgumentHelp("A client certificate for mutual TLS, with --client-key; implies --tls.", valueName: "file"))
    var clientCert: String?

    @Option(help: ArgumentHelp("The client certificate's private key (PEM).", valueName: "file"))
    var clientKey: String?
}

/// The settings in force, resolved once per command.
struct Context: Sendable {
    let server: String
    let output: OutputFormat
    let timeout: Duration
    /// `--timeout` as given on the command line: it bounds streams too (as grpcurl's `-max-time` does), which
    /// otherwise run until they end or are stopped.
    let explicitTimeout: Duration?
    let headers: [(name: String, value: String)]
    let verbose: Bool
    let token: (any TokenSource)?
    /// TLS for the connection, nil for h2c; and the name checked against the server's certificate.
    let tls: TLSContext?
    let serverName: String?

    static var environment: [String: String] { ProcessInfo.processInfo.environment }

    /// `$XDG_CONFIG_HOME/gatewayctl`, else `~/.config/gatewayctl`.
    static var configDirectory: URL {
        let environment = Self.environment
        if let xdg = environment["XDG_CONFIG_HOME"], !xdg.isEmpty {
            return URL(fileURLWithPath: xdg).appendingPathComponent("gatewayctl")
        }
        let home = environment["HOME"].flatMap { $0.isEmpty ? nil : $0 } ?? NSHomeDirectory()
        return URL(fileURLWithPath: home).appendingPathComponent(".config/gatewayctl")
    }

    /// Resolves `options`; `needsToken: false` for commands that call nothing that needs one.
    init(_ options: GlobalOptions, needsToken: Bool = true) throws {
        let environment = Self.environment
        let file = try Self.configFile()
        let fromEnvironment = environment["GATEWAY_SERVER"].flatMap { $0.isEmpty ? nil : $0 }
        let fromFile = try Self.configured(file, "server", as: String.self)
        server = options.server ?? fromEnvironment ?? fromFile ?? "127.0.0.1:50051"
        _ = try Self.checked(server, from: options.server != nil ? "--server" : fromEnvironment != nil ? "GATEWAY_SERVER" : "config.json: server")
        if let output = options.output {
            self.output = output
        } else if let text = try Self.configured(file, "output", as: String.self) {
            guard let output = OutputFormat(rawValue: text) else { throw UsageError("config.json: output must be text, json or table") }
            self.output = output
        } else {
            output = .text
        }
        let seconds = try options.timeout ?? Self.configured(file, "timeout", as: NSNumber.self)?.doubleValue ?? 30
        guard seconds > 0, seconds <= 86_400 else {
            throw UsageError("\(options.timeout == nil ? "config.json: timeout" : "--timeout") must be between 0 and 86400 seconds")
        }
        timeout = .seconds(seconds)
        explicitTimeout = options.timeout.map { .seconds($0) }
        headers = try (options.headers + (Self.configured(file, "headers", as: [String].self) ?? [])).map { text in
            guard let equals = text.firstIndex(of: "="), equals != text.startIndex else {
                throw UsageError("-H \(text): a header is name=value")
            }
            return (String(text[..<equals]).lowercased().trimmingCharacters(in: .whitespaces), String(text[text.index(after: equals)...]))
        }
        verbose = options.verbose
        (tls, serverName) = try Self.tls(options, file: file)
        guard needsToken else {
            token = nil
            return
        }
        if let token = options.token {
            self.token = StaticToken(token)
        } else if let path = options.tokenFile {
            guard let text = try? String(contentsOfFile: path, encoding: .utf8) else {
                throw LocalFailure("--token-file \(path) cannot be read")
            }
            token = StaticToken(text.trimmingCharacters(in: .whitespacesAndNewlines))
        } else if let token = environment["GATEWAY_TOKEN"], !token.isEmpty {
            self.token = StaticToken(token)
        } else {
            token = try SavedCredentials.load()?.tokenSource()
        }
    }

    /// Flag, else environment (`GATEWAY_TLS`, `GATEWAY_CA_CERT`), else config.json (`tls`, `ca_cert`,
    /// `server_name`, `client_cert`, `client_key`).
    static func tls(_ options: GlobalOptions, file: [String: Any]) throws -> (TLSContext?, String?) {
        let environment = Self.environment
        let caCert = try options.caCert ?? environment["GATEWAY_CA_CERT"].flatMap { $0.isEmpty ? nil : $0 }
            ?? configured(file, "ca_cert", as: String.self)
        let serverName = try options.serverName ?? configured(file, "server_name", as: String.self)
        let clientCert = try options.clientCert ?? configured(file, "client_cert", as: String.self)
        let clientKey = try options.clientKey ?? configured(file, "client_key", as: String.self)
        let enabled = try options.tls || ["1", "true", "yes"].contains(environment["GATEWAY_TLS"]?.lowercased() ?? "")
            || configured(file, "tls", as: Bool.self) == true || caCert != nil || serverName != nil || clientCert != nil
        guard enabled else { return (nil, nil) }
        guard (clientCert == nil) == (clientKey == nil) else {
            throw UsageError("--client-cert and --client-key go together")
        }
        var configuration = TLSClientConfiguration(caFile: caCert, serverName: serverName)
        configuration.certificateChainFile = clientCert
        configuration.privateKeyFile = clientKey
        do {
            return (try TLSContext.client(configuration), serverName)
        } catch {
            throw LocalFailure("\(error)")
        }
    }

    static func checked(_ server: String, from source: String = "--server") throws -> (String, Int) {
        do {
            return try GatewayConnection.parse(server)
        } catch {
            throw UsageError("\(source) \(server) is not host:port")
        }
    }

    static func configFile() throws -> [String: Any] {
        let url = configDirectory.appendingPathComponent("config.json")
        guard let data = FileManager.default.contents(atPath: url.path) else { return [:] }
        guard let object = try? JSONSerialization.jsonObject(with: data) as? [String: Any] else {
            throw UsageError("\(url.path) is not a JSON object")
        }
        return object
    }

    /// `key` of the config file as a `T`, nil when it is not there; a value of another type is a usage error
    /// (rather than silently falling back to the default).
    static func configured<T>(_ file: [String: Any], _ key: String, as type: T.Type) throws -> T? {
        guard let value = file[key], !(value is NSNull) else { return nil }
        guard let typed = value as? T else {
            throw UsageError("config.json: \(key) must be \(Self.describe(type))")
        }
        return typed
    }

    private static func describe<T>(_ type: T.Type) -> String {
        switch type {
        case is String.Type: "a string"
        case is NSNumber.Type: "a number"
        case is Bool.Type: "true or false"
        default: "a list of strings"
        }
    }

    /// The deadline of a stream: `--timeout` when given, else `default` (streams outlive the default deadline).
    func streamTimeout(default: Duration) -> Duration {
        explicitTimeout ?? `default`
    }

    /// A connection with the resolved server, token, headers and deadline (and the verbose printer).
    func connect() throws -> GatewayConnection {
        var options = GatewayConnection.Options()
        options.defaultTimeout = timeout
        options.headers = headers
        options.transport.tls = tls
        options.transport.tlsServerName = serverName
        return try GatewayConnection.connect(to: server, token: token, options: options, interceptors: verbose ? [VerboseHeaders()] : [])
    }

    /// Makes one call with a connection and prints the message it returns.
    func show(_ call: (GatewayConnection) async throws -> some ProtoMessage) async throws {
        try Printer(format: output).message(try await withConnection(call))
    }

    /// Runs `body` with a connection, closing it afterwards.
    func withConnection<T: Sendable>(_ body: (GatewayConnection) async throws -> T) async throws -> T {
        let connection = try connect()
        do {
            let result = try await body(connection)
            await connection.close()
            return result
        } catch {
            await connection.close()
            throw error
        }
    }
}

/// Prints each call's request headers (the token redacted), response headers and trailers on stderr (`-v`).
struct VerboseHeaders: ClientInterceptor {
    func intercept<R: Sendable>(
        _ call: ClientCall,
        next: (ClientCall, @Sendable (RPCClientStream) async throws -> R) async throws -> R,
        body: @escaping @Sendable (RPCClientStream) async throws -> R
    ) async throws -> R {
        var lines = ["> \(call.descriptor.path)"]
        for (name, value) in call.metadata {
            lines.append("> \(name): \(Self.redacted(name, value.description))")
        }
        Self.write(lines)
        return try await next(call) { stream in
            let inbound = stream.inbound.map { part -> ClientResponsePart in
                switch part {
                case .metadata(let metadata):
                    Self.write(["< response headers"] + metadata.map { "< \($0.key): \(Self.redacted($0.key, $0.value.description))" })
                case .status(let status, let trailers):
                    Self.write(["< status: \(status.code) \(status.message)"] + trailers.map { "< \($0.key): \(Self.redacted($0.key, $0.value.description))" })
                case .message:
                    break
                }
                return part
            }
            return try await body(RPCClientStream(outbound: stream.outbound, finish: stream.finish, inbound: inbound))
        }
    }

    static func redacted(_ name: String, _ value: String) -> String {
        let secret = ["authorization", "cookie", "x-api-key", "proxy-authorization"].contains(name.lowercased())
        return secret ? "<redacted>" : value
    }

    static func write(_ lines: [String]) {
        FileHandle.standardError.write(Data((lines.joined(separator: "\n") + "\n").utf8))
    }
}
