/// A setting that cannot work: an unknown key in the configuration file, a value of the wrong type or out of
/// range, an unreadable file. The message names where the value came from (the flag, the environment
/// variable or the file and key) and is meant to be printed as it is.
public struct ConfigurationError: Error, CustomStringConvertible, Sendable {
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        private enum Base: String, Hashable, Sendable {
            case unknownKey, wrongType, invalidValue, unreadableFile, unsupportedFormat, conflict
        }

        private let base: Base

        private init(_ base: Base) {
            self.base = base
        }

        /// The file has a key that names no setting.
        public static let unknownKey = Self(.unknownKey)
        /// A file value has the wrong JSON type.
        public static let wrongType = Self(.wrongType)
        /// A value does not parse or is out of range.
        public static let invalidValue = Self(.invalidValue)
        /// The file cannot be read or is not JSON.
        public static let unreadableFile = Self(.unreadableFile)
        /// The file is in a format the gateway does not read (TOML).
        public static let unsupportedFormat = Self(.unsupportedFormat)
        /// Settings that cannot go together (local mode on a public address).
        public static let conflict = Self(.conflict)

        public var description: String { base.rawValue }
    }

    public var code: Code
    public var message: String
    /// The setting's key in the configuration file (`auth.leeway_seconds`), when one setting is at fault.
    public var key: String?
    public var cause: (any Error)?

    public init(_ code: Code, _ message: String, key: String? = nil, cause: (any Error)? = nil) {
        self.code = code
        self.message = message
        self.key = key
        self.cause = cause
    }

    public var description: String { message }
}
