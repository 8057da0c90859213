/// Where a listing stopped, sealed so callers can neither read nor forge it. It carries the last id
/// returned (keyset paging) and the filter it was made for: a token from one listing is refused by another.
struct PageToken: Equatable {
    /// Which listing, so that a sessions token is not accepted by the users listing.
    enum Listing: UInt8 {
        case users = 1
        case sessions = 2
        /// `after` holds a sequence number in its low 64 bits.
        case events = 3
        case files = 4
    }

    var listing: Listing
    /// Filter flags the token is bound to (e.g. active only), compared on use.
    var flags: UInt8
    var after: ULID
    /// Binds a token to one owner's listing (e.g. the sessions of one user); empty when not needed.
    var scope: [UInt8]

    private static let version: UInt8 = 1

    func sealed(with sealer: any TokenSealer) -> String {
        sealer.seal([PageToken.version, listing.rawValue, flags] + after.bytes + scope)
    }

    /// Opens `text` for `listing`; `.invalidArgument` on the `page_token` field when it is not a token we
    /// made for this very listing, filter and scope.
    static func open(
        _ text: String, listing: Listing, flags: UInt8, scope: [UInt8] = [], with sealer: any TokenSealer
    ) throws(DomainError) -> ULID {
        guard let bytes = sealer.open(text), bytes.count == 19 + scope.count, bytes[0] == version,
            bytes[1] == listing.rawValue, let after = ULID(bytes: bytes[3..<19])
        else { throw .invalid("page_token", "is not a page token this server issued, or was altered") }
        guard bytes[2] == flags, Array(bytes[19...]) == scope else {
            throw .invalid("page_token", "was issued for a different filter; start again without a page token")
        }
        return after
    }
}

/// Page sizes as the API defines them: 0 means the default, more than the maximum is refused.
struct PageSize {
    static func resolve(_ requested: Int32, default defaultSize: Int = 100, maximum: Int = 1000) throws(DomainError) -> Int {
        if requested == 0 { return defaultSize }
        guard requested > 0, Int(requested) <= maximum else {
            throw .invalid("page_size", "must be between 0 and \(maximum)")
        }
        return Int(requested)
    }
}
