import Foundation
import Logging

/// Where a setting's value came from; the first that has one wins, in this order.
public enum SettingSource: String, Sendable, CaseIterable {
    case flag
    case environment = "env"
    case file
    case `default`
}

/// The places settings come from, and the one place where they are resolved: a flag beats its `GATEWAY_*`
/// environment variable, which beats the configuration file, which beats the default. Every value is read and
/// checked the same way whatever its source, and errors name that source (`--port`, `GATEWAY_PORT` or the
/// file's key).
public struct ConfigurationSources: Sendable {
    /// Flag values as text, by flag (`"--port": "0"`); a flag given without a value (`--firebase-check-revoked`)
    /// is `"true"`.
    public var flags: [String: String]
    /// The process environment; only `GATEWAY_*` variables named by a setting are read, and empty ones are unset.
    public var environment: [String: String]
    public var file: ConfigurationFile?

    public init(flags: [String: String] = [:], environment: [String: String] = [:], file: ConfigurationFile? = nil) {
        self.flags = flags
        self.environment = environment
        self.file = file
    }

    /// The flag and environment variable that choose the configuration file.
    public static let configFlag = "--config"
    public static let configVariable = "GATEWAY_CONFIG"

    /// The configuration file named by `--config` (passed as `flag`) or else `GATEWAY_CONFIG`, loaded; nil when neither is set.
    public static func configurationFile(
        flag: String?, environment: [String: String], settings: [Setting] = Setting.gateway
    ) throws(ConfigurationError) -> ConfigurationFile? {
        guard let path = flag ?? environment[configVariable].flatMap({ $0.isEmpty ? nil : $0 }) else { return nil }
        return try ConfigurationFile.load(path: path, settings: settings)
    }

    /// Resolves every setting over `defaults`.
    public func resolve(
        _ settings: [Setting] = Setting.gateway, defaults: GatewaySettings = .defaults
    ) throws(ConfigurationError) -> ResolvedConfiguration {
        let flagNames = Set(settings.map(\.flag))
        if let stray = flags.keys.sorted().first(where: { !flagNames.contains($0) }) {
            preconditionFailure("\(stray) is passed as a flag but names no setting")
        }
        var resolved = defaults
        var entries: [ResolvedConfiguration.Entry] = []
        for setting in settings {
            var source = SettingSource.default
            if let text = flags[setting.flag] {
                setting.assign(&resolved, try setting.parse(text: text, origin: setting.flag))
                source = .flag
            } else if let text = environment[setting.environmentVariable], !text.isEmpty {
                setting.assign(&resolved, try setting.parse(text: text, origin: "\(setting.environmentVariable)=\(text)"))
                source = .environment
            } else if let file, let value = file.values[setting.key] {
                setting.assign(&resolved, try setting.parse(json: value, origin: "\(file.path): \"\(setting.key)\""))
                source = .file
            }
            entries.append(.init(setting: setting, source: source))
        }
        return ResolvedConfiguration(settings: resolved, entries: entries, file: file?.path)
    }
}

extension Setting {
    /// Reads a flag's or environment variable's text.
    func parse(text: String, origin: String) throws(ConfigurationError) -> Value {
        let value: Value
        switch kind {
        case .string:
            value = .string(text)
        case .choice:
            value = .string(text.lowercased())
        case .integer:
            guard let number = Int(text.trimmingCharacters(in: .whitespaces)) else {
                throw ConfigurationError(.invalidValue, "\(origin): \"\(text)\" is not an integer", key: key)
            }
            value = .integer(number)
        case .boolean:
            switch text.lowercased() {
            case "1", "true", "yes", "on": value = .boolean(true)
            case "0", "false", "no", "off": value = .boolean(false)
            default: throw ConfigurationError(.invalidValue, "\(origin): \"\(text)\" is not true or false (1/0, yes/no)", key: key)
            }
        case .list:
            value = .list(Self.items(text))
        }
        return try checked(value, origin: origin)
    }

    /// Reads a value from the configuration file (its JSON type already checked).
    func parse(json: JSONValue, origin: String) throws(ConfigurationError) -> Value {
        let value: Value
        switch (kind, json) {
        case (.list, .string(let text)): value = .list(Self.items(text))
        case (.list, .array(let items)):
            value = .list(items.flatMap { item -> [String] in if case .string(let text) = item { Self.items(text) } else { [] } })
        case (.choice, .string(let text)): value = .string(text.lowercased())
        case (_, .string(let text)): value = .string(text)
        case (_, .integer(let number)): value = .integer(number)
        case (_, .boolean(let on)): value = .boolean(on)
        default: throw ConfigurationError(.wrongType, "\(origin) must be \(kind.expected), not \(json.typeName)", key: key)
        }
        return try checked(value, origin: origin)
    }

    private func checked(_ value: Value, origin: String) throws(ConfigurationError) -> Value {
        switch (kind, value) {
        case (.integer(let range), .integer(let number)) where !range.contains(number):
            throw ConfigurationError(
                .invalidValue, "\(origin) must be between \(range.lowerBound) and \(range.upperBound), not \(number)", key: key
            )
        case (.choice(let choices), .string(let text)) where !choices.contains(text):
            throw ConfigurationError(.invalidValue, "\(origin) must be \(kind.expected), not \"\(text)\"", key: key)
        default:
            return value
        }
    }

    private static func items(_ text: String) -> [String] {
        text.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }
    }
}

/// The settings in force and where each came from, to print at start.
public struct ResolvedConfiguration: Sendable {
    public struct Entry: Sendable {
        public let setting: Setting
        public let source: SettingSource
    }

    public var settings: GatewaySettings
    /// One per setting, in the table's order.
    public let entries: [Entry]
    /// The configuration file read, if any.
    public let file: String?

    public func source(of key: String) -> SettingSource? {
        entries.first { $0.setting.key == key }?.source
    }

    /// The value shown for a setting: `none` when unset, `***` when secret, URLs without credentials or query.
    public func shownValue(of entry: Entry) -> String {
        guard let value = entry.setting.current(settings) else { return "none" }
        if entry.setting.isMasked { return "***" }
        return Self.withoutCredentials(value)
    }

    /// What is logged at start: each setting's key with `value (source)`, secrets masked.
    public var summary: Logger.Metadata {
        var metadata: Logger.Metadata = [:]
        for entry in entries {
            metadata[entry.setting.key] = "\(shownValue(of: entry)) (\(entry.source.rawValue))"
        }
        if let file { metadata["config_file"] = "\(file)" }
        return metadata
    }

    /// `https://user:pass@host/path?key=…` shown as `https://***@host/path?***`: URLs may carry credentials.
    static func withoutCredentials(_ value: String) -> String {
        guard let schemeEnd = value.range(of: "://") else { return value }
        var shown = value
        let afterScheme = shown[schemeEnd.upperBound...]
        let authorityEnd = afterScheme.firstIndex { "/?#".contains($0) } ?? shown.endIndex
        if let at = shown[schemeEnd.upperBound..<authorityEnd].lastIndex(of: "@") {
            shown.replaceSubrange(schemeEnd.upperBound..<at, with: "***")
        }
        if let query = shown.firstIndex(of: "?") {
            shown.replaceSubrange(shown.index(after: query)..., with: "***")
        }
        return shown
    }
}
