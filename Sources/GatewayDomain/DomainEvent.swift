/// What the user and file use cases record in the event log, in the same transaction as the change itself.
public enum DomainEvent: Sendable, Hashable {
    case userCreated(User)
    case userUpdated(User, changed: [UserField])
    case userDeleted(User)
    case fileUploaded(FileRecord, deduplicated: Bool)
    case fileDeleted(FileRecord)

    /// The types the gateway records itself; publishers may not use them, so a consumer can trust them.
    public static let reservedTypes: Set<String> = ["UserCreated", "UserUpdated", "UserDeleted", "FileUploaded", "FileDeleted"]

    /// The event type in the log.
    public var type: String {
        switch self {
        case .userCreated: "UserCreated"
        case .userUpdated: "UserUpdated"
        case .userDeleted: "UserDeleted"
        case .fileUploaded: "FileUploaded"
        case .fileDeleted: "FileDeleted"
        }
    }

    /// The id of the entity the event is about.
    public var aggregateID: String {
        switch self {
        case .userCreated(let user), .userUpdated(let user, _), .userDeleted(let user): user.id.description
        case .fileUploaded(let file, _), .fileDeleted(let file): file.id.description
        }
    }

    /// Whose event it is: the account the changed user or file belongs to. Its publisher in the log, so the
    /// owner reads it even when an admin caused it.
    public var owner: String {
        switch self {
        case .userCreated(let user), .userUpdated(let user, _), .userDeleted(let user): user.firebaseUID
        case .fileUploaded(let file, _), .fileDeleted(let file): file.ownerID
        }
    }
}
