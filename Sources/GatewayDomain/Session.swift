/// One signed-in device of a user.
public struct Session: Sendable, Hashable {
    public var id: ULID
    public var userID: UserID
    /// A label for the device, e.g. "Pixel 8".
    public var device: DeviceLabel
    public var createdAt: UnixTime
    public var expiresAt: UnixTime
    public var revoked: Bool

    public init(id: ULID, userID: UserID, device: DeviceLabel, createdAt: UnixTime, expiresAt: UnixTime, revoked: Bool = false) {
        self.id = id
        self.userID = userID
        self.device = device
        self.createdAt = createdAt
        self.expiresAt = expiresAt
        self.revoked = revoked
    }

    /// Usable at `time`: not revoked and not expired.
    public func isActive(at time: UnixTime) -> Bool { !revoked && time < expiresAt }
}

/// A device label: 1 to 128 characters, no control characters.
public struct DeviceLabel: Sendable, Hashable, CustomStringConvertible {
    public let value: String
    public static let maximumLength = 128

    public init(_ text: String, field: String = "device") throws(DomainError) {
        value = try text.validatedLabel(field: field, maximumLength: DeviceLabel.maximumLength)
    }

    public var description: String { value }
}
