/// A user's identifier: a ULID, so ids sort by creation time.
public struct UserID: Sendable, Hashable, Comparable, CustomStringConvertible {
    public let ulid: ULID

    public init(_ ulid: ULID) { self.ulid = ulid }

    /// Parses a request field; `field` names it in the error.
    public init(parsing text: String, field: String = "id") throws(DomainError) {
        guard !text.isEmpty else { throw .invalid(field, "is required") }
        guard let ulid = ULID(text) else { throw .invalid(field, "is not a ULID (26 Crockford base32 characters)") }
        self.ulid = ulid
    }

    public static func < (a: UserID, b: UserID) -> Bool { a.ulid < b.ulid }
    public var description: String { ulid.description }
}

/// A user of the product, linked to the Firebase account that created it.
public struct User: Sendable, Hashable {
    public var id: UserID
    public var email: Email
    public var displayName: DisplayName
    public var photoURL: PhotoURL
    /// The Firebase uid of the account this user belongs to; one user per uid.
    public var firebaseUID: String
    public var isActive: Bool
    /// 1 when created, one more on every change: optimistic locking.
    public var version: Int64
    public var createdAt: UnixTime
    public var updatedAt: UnixTime

    public init(
        id: UserID, email: Email, displayName: DisplayName, photoURL: PhotoURL, firebaseUID: String,
        isActive: Bool = true, version: Int64 = 1, createdAt: UnixTime, updatedAt: UnixTime
    ) {
        self.id = id
        self.email = email
        self.displayName = displayName
        self.photoURL = photoURL
        self.firebaseUID = firebaseUID
        self.isActive = isActive
        self.version = version
        self.createdAt = createdAt
        self.updatedAt = updatedAt
    }
}

/// What a user is called on screen: 1 to 256 characters, no control characters.
public struct DisplayName: Sendable, Hashable, CustomStringConvertible {
    public let value: String
    public static let maximumLength = 256

    public init(_ text: String, field: String = "display_name") throws(DomainError) {
        value = try text.validatedLabel(field: field, maximumLength: DisplayName.maximumLength)
    }

    public var description: String { value }
}

/// A link to the user's picture: empty, or an absolute `https://` or `http://` URL of at most 2048 bytes.
public struct PhotoURL: Sendable, Hashable, CustomStringConvertible {
    public let value: String
    public static let maximumLength = 2048
    public static let none = PhotoURL(unchecked: "")

    private init(unchecked value: String) { self.value = value }

    public init(_ text: String, field: String = "photo_url") throws(DomainError) {
        let trimmed = text.trimmingASCIIWhitespace()
        if trimmed.isEmpty {
            self = .none
            return
        }
        guard trimmed.utf8.count <= PhotoURL.maximumLength else {
            throw .invalid(field, "is longer than \(PhotoURL.maximumLength) bytes")
        }
        let lower = trimmed.lowercased()
        guard lower.hasPrefix("https://") || lower.hasPrefix("http://") else {
            throw .invalid(field, "must be an http or https URL")
        }
        let rest = lower.drop(while: { $0 != "/" }).dropFirst(2)
        guard let hostStart = rest.first, hostStart != "/", hostStart != "?", hostStart != "#",
            !trimmed.contains(where: { $0 == " " }), !trimmed.containsControlCharacter
        else { throw .invalid(field, "is not a valid URL") }
        value = trimmed
    }

    public var description: String { value }
}

/// The fields `UpdateUser` may change.
public enum UserField: String, Sendable, Hashable, CaseIterable {
    case email
    case displayName = "display_name"
    case photoURL = "photo_url"
    case isActive = "is_active"
}
