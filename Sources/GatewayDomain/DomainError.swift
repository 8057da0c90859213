/// Why a use case refused. The server maps `code` to a gRPC status in one place; `message` is safe to show
/// the caller (it names fields and versions, never secrets).
public struct DomainError: Error, Sendable, Hashable, CustomStringConvertible {
    public enum Code: Sendable, Hashable {
        /// A value failed validation; `field` names it.
        case invalidArgument
        case notFound
        case alreadyExists
        /// Optimistic locking: the stored version is not the one the caller expected.
        case versionConflict
        case permissionDenied
        /// The call is valid but the state does not allow it (e.g. a session before the user exists).
        case failedPrecondition
        case resourceExhausted
        /// A backing store cannot be reached right now: retrying may work.
        case unavailable
    }

    public var code: Code
    public var message: String
    /// The request field at fault, for `invalidArgument` (e.g. `email`, `user.display_name`).
    public var field: String?

    public init(_ code: Code, _ message: String, field: String? = nil) {
        self.code = code
        self.message = message
        self.field = field
    }

    public var description: String { message }

    public static func invalid(_ field: String, _ problem: String) -> DomainError {
        DomainError(.invalidArgument, "\(field): \(problem)", field: field)
    }

    public static func notFound(_ what: String) -> DomainError {
        DomainError(.notFound, "\(what) not found")
    }

    public static func versionConflict(expected: Int64, actual: Int64) -> DomainError {
        DomainError(.versionConflict, "version conflict: expected version \(expected), stored version is \(actual)")
    }

    public static func permissionDenied(_ message: String) -> DomainError {
        DomainError(.permissionDenied, message)
    }
}
