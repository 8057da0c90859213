/// A storage failure that is not SQLite's: the database is closed, was written by a newer build, or holds a
/// record the domain does not accept. Never a caller's mistake, so never a `DomainError`.
public struct StorageError: Error, Sendable, Hashable, CustomStringConvertible {
    public struct Code: Sendable, Hashable, CustomStringConvertible {
        private enum Base: String, Sendable, Hashable {
            case closed
            case schemaTooNew = "schema too new"
            case invalidRecord = "invalid record"
        }

        private let base: Base

        /// The database was closed before the call.
        public static let closed = Code(base: .closed)
        /// The database's schema version is above every migration this build knows: a newer build wrote it.
        public static let schemaTooNew = Code(base: .schemaTooNew)
        /// A stored value failed validation when read back, or a value cannot be stored exactly.
        public static let invalidRecord = Code(base: .invalidRecord)

        public var description: String { base.rawValue }
    }

    public var code: Code
    public var message: String

    public init(_ code: Code, _ message: String) {
        self.code = code
        self.message = message
    }

    public var description: String { message }
}
