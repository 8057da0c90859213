import GatewayApplication
import OpenSSLCrypto
import ProtoRuntime

/// Seals with HMAC-SHA-256: the token is base64url(payload ‖ MAC), compared in constant time on open.
/// Strict base64url (no padding, no stray bits) makes every altered character an invalid token.
public struct HMACTokenSealer: TokenSealer {
    private let key: [UInt8]
    private static let macLength = 32

    public init(key: [UInt8]) {
        precondition(key.count >= 32, "an HMAC-SHA-256 key needs at least 32 bytes")
        self.key = key
    }

    public func seal(_ payload: [UInt8]) -> String {
        Base64.encodeURLSafeUnpadded(payload + Digest.hmacSHA256(key: key, message: payload))
    }

    public func open(_ token: String) -> [UInt8]? {
        guard token.utf8.count <= 4096, let bytes = try? Base64.decodeStrict(token), bytes.count >= Self.macLength else {
            return nil
        }
        let payload = Array(bytes.dropLast(Self.macLength))
        let mac = Array(bytes.suffix(Self.macLength))
        return Digest.constantTimeEqual(mac, Digest.hmacSHA256(key: key, message: payload)) ? payload : nil
    }
}

/// Signs with HMAC-SHA-256; signatures are unpadded base64url.
public struct HMACSigner: MessageSigner {
    private let key: [UInt8]

    public init(key: [UInt8]) {
        precondition(key.count >= 32, "an HMAC-SHA-256 key needs at least 32 bytes")
        self.key = key
    }

    public func signature(for message: [UInt8]) -> String {
        Base64.encodeURLSafeUnpadded(Digest.hmacSHA256(key: key, message: message))
    }

    public func isValid(_ signature: String, for message: [UInt8]) -> Bool {
        guard signature.utf8.count == 43, let given = try? Base64.decodeStrict(signature) else { return false }
        return Digest.constantTimeEqual(given, Digest.hmacSHA256(key: key, message: message))
    }
}
