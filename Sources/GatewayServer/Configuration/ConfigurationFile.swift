import Foundation

/// A JSON configuration file (`--config gateway.json`), its nested objects flattened to the settings' dotted
/// keys. A key that names no setting is an error naming it, so a typo never goes unnoticed. TOML is not read
/// yet: a `.toml` file is refused with a message saying so.
public struct ConfigurationFile: Sendable {
    /// The file as given, for messages.
    public let path: String
    /// The values by setting key (`auth.leeway_seconds`); JSON `null` is left out (the value is not set here).
    let values: [String: JSONValue]

    /// Reads and checks the file against `settings`.
    public static func load(path: String, settings: [Setting] = Setting.gateway) throws(ConfigurationError) -> ConfigurationFile {
        if path.lowercased().hasSuffix(".toml") {
            throw ConfigurationError(.unsupportedFormat, """
                \(path): TOML configuration files are not supported yet; only JSON is (the same keys, e.g. \
                {"port": 50051, "log": {"level": "info"}})
                """)
        }
        var isDirectory: ObjCBool = false
        if FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory), isDirectory.boolValue {
            throw ConfigurationError(.unreadableFile, "\(path): cannot read the configuration file (it is a directory)")
        }
        let data: Data
        do {
            data = try Data(contentsOf: URL(fileURLWithPath: path))
        } catch {
            throw ConfigurationError(.unreadableFile, "\(path): cannot read the configuration file (\(Self.reason(error)))", cause: error)
        }
        return try ConfigurationFile(path: path, json: data, settings: settings)
    }

    /// Parses JSON text read from `path`.
    public init(path: String, json: Data, settings: [Setting] = Setting.gateway) throws(ConfigurationError) {
        self.path = path
        let document: JSONValue
        do {
            document = try JSONDecoder().decode(JSONValue.self, from: json)
        } catch {
            // JSONDecoder does not say where; JSONSerialization does ("Invalid value around character 18.").
            var reason = Self.reason(error)
            do { _ = try JSONSerialization.jsonObject(with: json, options: [.fragmentsAllowed]) } catch { reason = Self.reason(error) }
            throw ConfigurationError(.unreadableFile, "\(path): not valid JSON (\(reason))", cause: error)
        }
        guard case .object(let root) = document else {
            throw ConfigurationError(.wrongType, "\(path): the configuration must be a JSON object, not \(document.typeName)")
        }
        var values: [String: JSONValue] = [:]
        try Self.flatten(root, prefix: "", into: &values, known: Dictionary(settings.map { ($0.key, $0) }) { first, _ in first }, path: path)
        self.values = values
    }

    private static func flatten(
        _ object: [String: JSONValue], prefix: String, into values: inout [String: JSONValue], known: [String: Setting], path: String
    ) throws(ConfigurationError) {
        for name in object.keys.sorted() {
            let key = prefix + name
            let value = object[name]!
            if let setting = known[key] {
                if case .null = value { continue }
                guard value.fits(setting.kind) else {
                    throw ConfigurationError(
                        .wrongType, "\(path): \"\(key)\" must be \(setting.kind.expected), not \(value.typeName)", key: key
                    )
                }
                values[key] = value
            } else if known.keys.contains(where: { $0.hasPrefix(key + ".") }) {
                guard case .object(let nested) = value else {
                    throw ConfigurationError(.wrongType, "\(path): \"\(key)\" must be an object, not \(value.typeName)", key: key)
                }
                try flatten(nested, prefix: key + ".", into: &values, known: known, path: path)
            } else {
                let siblings = known.keys.filter { $0.hasPrefix(prefix) }.map { String($0.dropFirst(prefix.count)) }
                let names = Set(siblings.map { $0.split(separator: ".")[0] }).sorted()
                throw ConfigurationError(.unknownKey, """
                    \(path): unknown key "\(key)"; \(prefix.isEmpty ? "known keys" : "known keys in \"\(prefix.dropLast())\""): \
                    \(names.joined(separator: ", "))
                    """, key: key)
            }
        }
    }

    private static func reason(_ error: any Error) -> String {
        switch error {
        case DecodingError.dataCorrupted(let context): context.debugDescription
        case let error as CocoaError where error.code == .fileReadNoSuchFile: "no such file"
        case let error as NSError: error.userInfo[NSDebugDescriptionErrorKey] as? String ?? error.localizedDescription
        default: "\(error)"
        }
    }
}

/// A JSON document as the configuration file holds it.
enum JSONValue: Decodable, Sendable, Equatable {
    case null
    case boolean(Bool)
    case integer(Int)
    case number(Double)
    case string(String)
    case array([JSONValue])
    case object([String: JSONValue])

    init(from decoder: any Decoder) throws {
        let container = try decoder.singleValueContainer()
        if container.decodeNil() {
            self = .null
        } else if let value = try? container.decode(Bool.self) {
            self = .boolean(value)
        } else if let value = try? container.decode(Int.self) {
            self = .integer(value)
        } else if let value = try? container.decode(Double.self) {
            self = .number(value)
        } else if let value = try? container.decode(String.self) {
            self = .string(value)
        } else if let value = try? container.decode([JSONValue].self) {
            self = .array(value)
        } else {
            self = .object(try container.decode([String: JSONValue].self))
        }
    }

    var typeName: String {
        switch self {
        case .null: "null"
        case .boolean: "a boolean"
        case .integer: "an integer"
        case .number: "a number"
        case .string: "a string"
        case .array: "an array"
        case .object: "an object"
        }
    }

    /// Whether the JSON type is the one the setting's kind takes (the value itself is checked later).
    func fits(_ kind: Setting.Kind) -> Bool {
        switch (kind, self) {
        case (.string, .string), (.choice, .string), (.integer, .integer), (.boolean, .boolean), (.list, .string): true
        case (.list, .array(let items)): items.allSatisfy { if case .string = $0 { true } else { false } }
        default: false
        }
    }
}
