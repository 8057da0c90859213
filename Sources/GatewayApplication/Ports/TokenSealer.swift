/// Seals bytes into a tamper-evident text token and opens such tokens: page tokens and signed links are
/// built on it. The key never leaves the implementation.
public protocol TokenSealer: Sendable {
    /// `payload` plus a MAC, as URL-safe text.
    func seal(_ payload: [UInt8]) -> String
    /// The payload, or nil when the token was not sealed by this key or was altered in any way.
    func open(_ token: String) -> [UInt8]?
}
