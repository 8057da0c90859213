import Foundation
import Logging

/// How log lines are written: swift-log's text lines, or one JSON object per line (``JSONLogHandler``).
public enum LogFormat: String, Sendable, CaseIterable {
    case text, json
}

/// Everything the gateway process is configured with. ``ConfigurationSources`` fills it from flags, `GATEWAY_*`
/// environment variables and a JSON file, in that order of precedence, over these defaults.
public struct GatewaySettings: Sendable, Equatable {
    public struct Log: Sendable, Equatable {
        public var level: Logger.Level = .info
        public var format: LogFormat = .text

        public init() {}
    }

    public struct Metrics: Sendable, Equatable {
        /// The port of the Prometheus endpoint (`GET /metrics`); nil serves no metrics, 0 picks a free port.
        public var port: Int?
        /// The metrics listener's address: loopback unless chosen, whatever the gRPC listener's.
        public var host = "127.0.0.1"

        public init() {}
    }

    public var host = "127.0.0.1"
    public var port = 50051
    /// The data directory as given (relative paths are resolved against the working directory).
    public var dataDirectory = "data"
    public var log = Log()
    public var metrics = Metrics()
    public var auth = AuthSettings()

    public init() {}

    public static var defaults: Self { Self() }

    public static func defaults(configure: (inout Self) -> Void) -> Self {
        var settings = Self()
        configure(&settings)
        return settings
    }

    public var dataDirectoryURL: URL {
        URL(fileURLWithPath: dataDirectory, isDirectory: true)
    }

    /// What the composition root needs.
    public var gatewayConfiguration: GatewayConfiguration {
        GatewayConfiguration(host: host, port: port, dataDirectory: dataDirectoryURL, auth: auth)
    }

    /// The checks that involve several settings at once, made before serving.
    public func validateForServing() throws(ConfigurationError) {
        if auth.isLocalMode && !GatewayConfiguration.isLoopback(host) {
            throw ConfigurationError(.conflict, """
                local mode (no --firebase-project-id) trusts a key in the data directory and serves loopback only; \
                \(host) is not a loopback address
                """, key: "host")
        }
    }
}
