/// Signs short messages (e.g. download links) with a key it keeps to itself.
public protocol MessageSigner: Sendable {
    /// A URL-safe signature of `message`.
    func signature(for message: [UInt8]) -> String
    /// Whether `signature` is this signer's signature of `message`, compared in constant time.
    func isValid(_ signature: String, for message: [UInt8]) -> Bool
}
