import Foundation
import GatewayServer
import Logging
import Testing

private func file(_ json: String, path: String = "gateway.json", settings: [Setting] = Setting.gateway) throws -> ConfigurationFile {
    try ConfigurationFile(path: path, json: Data(json.utf8), settings: settings)
}

/// The error a throwing expression raised, or nil (recording an issue) when it did not.
private func configurationError(_ body: () throws -> Void) -> ConfigurationError? {
    do {
        try body()
        Issue.record("expected a configuration error")
        return nil
    } catch let error as ConfigurationError {
        return error
    } catch {
        Issue.record("unexpected \(error)")
        return nil
    }
}

@Suite("configuration: precedence, validation, masking")
struct ConfigurationTests {
    @Test func defaultsWhenNothingIsSet() throws {
        let resolved = try ConfigurationSources().resolve()
        #expect(resolved.settings == GatewaySettings.defaults)
        #expect(resolved.entries.allSatisfy { $0.source == .default })
        #expect(resolved.settings.port == 50051 && resolved.settings.host == "127.0.0.1")
        #expect(resolved.settings.metrics.port == nil, "no metrics listener unless asked for")
        #expect(resolved.settings.log.level == .info && resolved.settings.log.format == .text)
    }

    @Test func aFlagBeatsTheEnvironmentWhichBeatsTheFileWhichBeatsTheDefault() throws {
        let config = try file(#"{"port": 1003, "host": "127.0.0.3", "data_dir": "/from/file", "log": {"level": "error"}}"#)
        let resolved = try ConfigurationSources(
            flags: ["--port": "1001"],
            environment: ["GATEWAY_PORT": "1002", "GATEWAY_HOST": "127.0.0.2", "GATEWAY_LOG_FORMAT": "json"],
            file: config
        ).resolve()
        #expect(resolved.settings.port == 1001)
        #expect(resolved.source(of: "port") == .flag)
        #expect(resolved.settings.host == "127.0.0.2")
        #expect(resolved.source(of: "host") == .environment)
        #expect(resolved.settings.dataDirectory == "/from/file")
        #expect(resolved.source(of: "data_dir") == .file)
        #expect(resolved.settings.log.level == .error && resolved.source(of: "log.level") == .file)
        #expect(resolved.settings.log.format == .json && resolved.source(of: "log.format") == .environment)
        #expect(resolved.source(of: "metrics_port") == .default)
    }

    @Test func emptyEnvironmentVariablesAreUnset() throws {
        let resolved = try ConfigurationSources(environment: ["GATEWAY_HOST": ""], file: try file(#"{"host": "127.0.0.9"}"#)).resolve()
        #expect(resolved.settings.host == "127.0.0.9" && resolved.source(of: "host") == .file)
    }

    @Test func everySettingHasItsOwnKeyFlagAndVariable() {
        let settings = Setting.gateway
        #expect(Set(settings.map(\.key)).count == settings.count)
        #expect(Set(settings.map(\.flag)).count == settings.count)
        #expect(Set(settings.map(\.environmentVariable)).count == settings.count)
        let names = Dictionary(uniqueKeysWithValues: settings.map { ($0.flag, $0.environmentVariable) })
        #expect(names["--auth-leeway-seconds"] == "GATEWAY_AUTH_LEEWAY_SECONDS")
        #expect(names["--firebase-project-id"] == "GATEWAY_FIREBASE_PROJECT_ID")
        #expect(names["--log-format"] == "GATEWAY_LOG_FORMAT")
        #expect(names["--metrics-port"] == "GATEWAY_METRICS_PORT")
    }

    @Test func nestedFileKeysMirrorTheFlags() throws {
        let config = try file("""
            {"host": "localhost", "port": 0, "data_dir": "d", "log": {"level": "debug", "format": "json"},
             "metrics_port": 9464, "metrics_host": "127.0.0.2",
             "auth": {"firebase_project_id": "p", "firebase_cert_url": "https://keys.example/id",
                      "firebase_session_cert_url": "https://keys.example/session", "leeway_seconds": 5,
                      "firebase_tenants": ["t1", "t2"], "firebase_check_revoked": true,
                      "firebase_service_account": "/etc/sa.json", "identity_toolkit_url": "https://toolkit.example"}}
            """)
        let settings = try ConfigurationSources(file: config).resolve().settings
        var expected = GatewaySettings.defaults {
            $0.host = "localhost"
            $0.port = 0
            $0.dataDirectory = "d"
            $0.log.level = .debug
            $0.log.format = .json
            $0.metrics.port = 9464
            $0.metrics.host = "127.0.0.2"
        }
        expected.auth.projectID = "p"
        expected.auth.idTokenKeysURL = "https://keys.example/id"
        expected.auth.sessionCookieKeysURL = "https://keys.example/session"
        expected.auth.leewaySeconds = 5
        expected.auth.tenants = ["t1", "t2"]
        expected.auth.checkRevoked = true
        expected.auth.serviceAccountFile = "/etc/sa.json"
        expected.auth.identityToolkitURL = "https://toolkit.example"
        #expect(settings == expected)
    }

    @Test func valuesReadTheSameWayFromEverySource() throws {
        let fromEnvironment = try ConfigurationSources(environment: [
            "GATEWAY_FIREBASE_TENANTS": "a, b,,c", "GATEWAY_FIREBASE_CHECK_REVOKED": "yes", "GATEWAY_LOG_LEVEL": "WARNING",
        ]).resolve().settings
        #expect(fromEnvironment.auth.tenants == ["a", "b", "c"])
        #expect(fromEnvironment.auth.checkRevoked)
        #expect(fromEnvironment.log.level == .warning)
        let fromFile = try ConfigurationSources(file: try file(#"{"auth": {"firebase_tenants": "a,b"}, "log": {"level": "Notice"}}"#))
            .resolve().settings
        #expect(fromFile.auth.tenants == ["a", "b"])
        #expect(fromFile.log.level == .notice)
        let flag = try ConfigurationSources(flags: ["--firebase-check-revoked": "true"], environment: ["GATEWAY_FIREBASE_CHECK_REVOKED": "0"])
            .resolve().settings
        #expect(flag.auth.checkRevoked)
    }

    @Test func nullInTheFileLeavesTheValueUnset() throws {
        let resolved = try ConfigurationSources(file: try file(#"{"metrics_port": null, "auth": {"firebase_project_id": null}}"#)).resolve()
        #expect(resolved.settings.metrics.port == nil && resolved.source(of: "metrics_port") == .default)
        #expect(resolved.settings.auth.isLocalMode)
    }

    @Test(arguments: [
        (#"{"prot": 1}"#, "prot", #"gateway.json: unknown key "prot"; known keys: auth, aws, backend, data_dir, host, insecure_plaintext, limits, log, metrics_host, metrics_port, port, tls"#),
        (#"{"auth": {"project_id": "p"}}"#, "auth.project_id", #"unknown key "auth.project_id"; known keys in "auth": firebase_cert_url"#),
        (#"{"log": {"level": "info", "colour": true}}"#, "log.colour", #"unknown key "log.colour"; known keys in "log": format, level"#),
    ])
    func unknownKeysAreErrorsNamingTheKey(json: String, key: String, message: String) {
        let error = configurationError { _ = try file(json) }
        #expect(error?.code == .unknownKey)
        #expect(error?.key == key)
        #expect(error?.message.contains(message) == true, "\(error?.message ?? "")")
    }

    @Test(arguments: [
        (#"{"port": "50051"}"#, "port", #"gateway.json: "port" must be an integer, not a string"#),
        (#"{"port": 1.5}"#, "port", #""port" must be an integer, not a number"#),
        (#"{"host": 127}"#, "host", #""host" must be a string, not an integer"#),
        (#"{"auth": "none"}"#, "auth", #""auth" must be an object, not a string"#),
        (#"{"auth": {"firebase_check_revoked": "yes"}}"#, "auth.firebase_check_revoked", "must be true or false, not a string"),
        (#"{"auth": {"firebase_tenants": [1, 2]}}"#, "auth.firebase_tenants", "must be a list of strings, not an array"),
    ])
    func wrongTypesNameTheKey(json: String, key: String, message: String) {
        let error = configurationError { _ = try file(json) }
        #expect(error?.code == .wrongType)
        #expect(error?.key == key)
        #expect(error?.message.contains(message) == true, "\(error?.message ?? "")")
    }

    @Test func invalidValuesNameTheirSource() throws {
        let leeway = configurationError { _ = try ConfigurationSources(environment: ["GATEWAY_AUTH_LEEWAY_SECONDS": "301"]).resolve() }
        #expect(leeway?.message == "GATEWAY_AUTH_LEEWAY_SECONDS=301 must be between 0 and 300, not 301")
        #expect(leeway?.key == "auth.leeway_seconds")
        let flag = configurationError { _ = try ConfigurationSources(flags: ["--auth-leeway-seconds": "-1"]).resolve() }
        #expect(flag?.message == "--auth-leeway-seconds must be between 0 and 300, not -1")
        let port = configurationError { _ = try ConfigurationSources(environment: ["GATEWAY_PORT": "http"]).resolve() }
        #expect(port?.message == #"GATEWAY_PORT=http: "http" is not an integer"#)
        let level = configurationError {
            _ = try ConfigurationSources(file: try file(#"{"log": {"level": "verbose"}}"#)).resolve()
        }
        #expect(level?.message == #"gateway.json: "log.level" must be one of trace, debug, info, notice, warning, error, critical, not "verbose""#)
        let format = configurationError { _ = try ConfigurationSources(flags: ["--log-format": "xml"]).resolve() }
        #expect(format?.message == #"--log-format must be one of text, json, not "xml""#)
        let boolean = configurationError { _ = try ConfigurationSources(environment: ["GATEWAY_FIREBASE_CHECK_REVOKED": "maybe"]).resolve() }
        #expect(boolean?.code == .invalidValue)
        #expect(boolean?.message.hasPrefix("GATEWAY_FIREBASE_CHECK_REVOKED=maybe") == true)
    }

    @Test func aBadValueInALowerSourceIsNotReadWhenAHigherOneWins() throws {
        let resolved = try ConfigurationSources(flags: ["--port": "1"], environment: ["GATEWAY_PORT": "nonsense"]).resolve()
        #expect(resolved.settings.port == 1)
    }

    @Test func tomlIsRefusedWithAClearMessage() {
        let error = configurationError { _ = try ConfigurationFile.load(path: "/etc/gateway.toml") }
        #expect(error?.code == .unsupportedFormat)
        #expect(error?.message.contains("only JSON") == true)
    }

    @Test func unreadableOrMalformedFilesAreErrors() throws {
        let missing = configurationError { _ = try ConfigurationFile.load(path: "/nonexistent/gateway.json") }
        #expect(missing?.code == .unreadableFile)
        #expect(missing?.message.hasPrefix("/nonexistent/gateway.json: cannot read") == true)
        let directory = configurationError { _ = try ConfigurationFile.load(path: FileManager.default.temporaryDirectory.path) }
        #expect(directory?.message.hasSuffix("cannot read the configuration file (it is a directory)") == true)
        let malformed = configurationError { _ = try file("{\"port\": 1,\n \"host\": }") }
        #expect(malformed?.code == .unreadableFile)
        #expect(malformed?.message.hasPrefix("gateway.json: not valid JSON (Invalid value around character") == true, "it says where")
        let array = configurationError { _ = try file("[1]") }
        #expect(array?.message == "gateway.json: the configuration must be a JSON object, not an array")
    }

    @Test func theConfigurationFileComesFromTheFlagElseTheEnvironment() throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("config-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let first = directory.appendingPathComponent("first.json")
        let second = directory.appendingPathComponent("second.json")
        try Data(#"{"port": 1}"#.utf8).write(to: first)
        try Data(#"{"port": 2}"#.utf8).write(to: second)
        let environment = ["GATEWAY_CONFIG": second.path]
        #expect(try ConfigurationSources.configurationFile(flag: first.path, environment: environment)?.path == first.path)
        #expect(try ConfigurationSources.configurationFile(flag: nil, environment: environment)?.path == second.path)
        #expect(try ConfigurationSources.configurationFile(flag: nil, environment: [:]) == nil)
    }

    @Test func theSummaryShowsEachValueWithItsSourceAndMasksSecrets() throws {
        let settings: [Setting] = [
            .integer("port", flag: "--port", \.port, in: 0...65535),
            .string("host", flag: "--host", \.host),
            .list("tenants", flag: "--tenants", \.auth.tenants),
            .optionalString("project", flag: "--project", \.auth.projectID),
            .string("toolkit_url", flag: "--toolkit-url", \.auth.identityToolkitURL),
            .optionalString("service_account", flag: "--service-account", \.auth.serviceAccountFile, secret: true),
            .string("signing_secret", flag: "--signing-secret", \.metrics.host),
        ]
        let resolved = try ConfigurationSources(
            flags: ["--port": "0"],
            environment: [
                "GATEWAY_SERVICE_ACCOUNT": "hunter2",
                "GATEWAY_TOOLKIT_URL": "https://user:pa55@toolkit.example/v1?key=AIzaSECRET",
            ],
            file: try file(#"{"tenants": ["b", "a"], "signing_secret": "s3cr3t"}"#, settings: settings)
        ).resolve(settings)
        let summary = resolved.summary
        #expect(summary["port"] == "0 (flag)")
        #expect(summary["host"] == "127.0.0.1 (default)")
        #expect(summary["tenants"] == "a,b (file)")
        #expect(summary["project"] == "none (default)")
        #expect(summary["toolkit_url"] == "https://***@toolkit.example/v1?*** (env)")
        #expect(summary["service_account"] == "*** (env)", "marked secret")
        #expect(summary["signing_secret"] == "*** (file)", "masked for its name")
        let rendered = "\(summary)"
        #expect(!rendered.contains("hunter2") && !rendered.contains("pa55") && !rendered.contains("AIzaSECRET") && !rendered.contains("s3cr3t"))
        #expect(resolved.settings.auth.serviceAccountFile == "hunter2", "masked when shown, not when used")
        #expect(Setting.gateway.filter(\.isMasked).map(\.key) == ["tls.key_passphrase"], "paths are shown; the key's passphrase is not")
    }

    @Test func localModeServesLoopbackOnly() throws {
        let public_ = try ConfigurationSources(flags: ["--host": "0.0.0.0"]).resolve().settings
        let error = configurationError { try public_.validateForServing() }
        #expect(error?.code == .conflict && error?.key == "host")
        #expect(error?.message.contains("0.0.0.0 is not a loopback address") == true)
        // With Firebase, a public address needs TLS, or an explicit --insecure-plaintext.
        let plaintext = try ConfigurationSources(flags: ["--host": "0.0.0.0", "--firebase-project-id": "p"]).resolve().settings
        let refused = configurationError { try plaintext.validateForServing() }
        #expect(refused?.message.contains("no certificate is set: tokens would cross the network in plaintext. Set --tls-cert") == true)
        let insecure = try ConfigurationSources(
            flags: ["--host": "0.0.0.0", "--firebase-project-id": "p", "--insecure-plaintext": "true"]
        ).resolve().settings
        try insecure.validateForServing()
    }
}
