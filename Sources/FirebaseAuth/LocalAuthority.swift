import Foundation
import GatewayApplication
import OpenSSLCrypto
import ProtoRuntime

/// Local mode, for the zero-configuration default: the gateway makes (once) its own RSA key and certificate
/// in its data directory, trusts only that key, under project id `local`, and mints tokens with exactly
/// Firebase's claim layout. Verification is the same code path as for real Firebase tokens; only the key
/// source differs. Never used when a real project id is configured.
public struct LocalAuthority: Sendable {
    public static let projectID = "local"

    public let kid: String
    public let certificatePEM: [UInt8]
    private let privateKey: RSAPrivateKey

    /// Loads the key and certificate from `directory`, creating them the first time (the private key is
    /// readable by its owner only).
    public static func loadOrCreate(in directory: URL) throws -> LocalAuthority {
        let keyFile = directory.appendingPathComponent("local-signing-key.pem")
        let certificateFile = directory.appendingPathComponent("local-signing-cert.pem")
        let files = FileManager.default
        if !files.fileExists(atPath: keyFile.path) || !files.fileExists(atPath: certificateFile.path) {
            try files.createDirectory(at: directory, withIntermediateDirectories: true)
            let key = try RSAPrivateKey.generate()
            let certificate = try key.selfSignedCertificatePEM(commonName: "gateway local mode", validDays: 3650)
            try write(key.pem(), to: keyFile, permissions: 0o600)
            try write(certificate, to: certificateFile, permissions: 0o644)
        }
        let key = try RSAPrivateKey(pem: Array(try Data(contentsOf: keyFile)))
        let certificate = Array(try Data(contentsOf: certificateFile))
        return LocalAuthority(privateKey: key, certificatePEM: certificate)
    }

    init(privateKey: RSAPrivateKey, certificatePEM: [UInt8]) {
        self.privateKey = privateKey
        self.certificatePEM = certificatePEM
        kid = Digest.sha256(certificatePEM).prefix(20).map { String(format: "%02x", $0) }.joined()
    }

    /// Writes atomically (temporary file, then rename), so a crash never leaves half a key.
    private static func write(_ bytes: [UInt8], to file: URL, permissions: Int) throws {
        let temporary = file.appendingPathExtension("tmp")
        try Data(bytes).write(to: temporary)
        try FileManager.default.setAttributes([.posixPermissions: permissions], ofItemAtPath: temporary.path)
        guard rename(temporary.path, file.path) == 0 else {
            throw CocoaError(.fileWriteUnknown, userInfo: [NSFilePathErrorKey: file.path])
        }
    }

    /// The only key local mode trusts, for both token kinds.
    public func signingKeys() throws -> StaticSigningKeys {
        StaticSigningKeys([kid: try RSAPublicKey(certificatePEM: certificatePEM)])
    }

    /// A token with Firebase's claim layout, signed with the local key.
    public func mint(
        uid: String, email: String? = nil, admin: Bool = false, now: UnixTime,
        lifetimeSeconds: Int64 = 3600, kind: TokenKind = .idToken
    ) throws -> String {
        var header = JSONWriter()
        header.beginObject()
        header.key("alg"); header.string("RS256")
        header.key("kid"); header.string(kid)
        header.key("typ"); header.string("JWT")
        header.endObject()

        let issuer = (kind == .idToken ? "https://securetoken.google.com/" : "https://session.firebase.google.com/")
            + Self.projectID
        var claims = JSONWriter()
        claims.beginObject()
        claims.key("iss"); claims.string(issuer)
        claims.key("aud"); claims.string(Self.projectID)
        claims.key("auth_time"); claims.rawNumber(String(now.seconds))
        claims.key("user_id"); claims.string(uid)
        claims.key("sub"); claims.string(uid)
        claims.key("iat"); claims.rawNumber(String(now.seconds))
        claims.key("exp"); claims.rawNumber(String(now.seconds + lifetimeSeconds))
        if let email {
            claims.key("email"); claims.string(email)
            claims.key("email_verified"); claims.bool(true)
        }
        if admin { claims.key("admin"); claims.bool(true) }
        claims.key("firebase")
        claims.beginObject()
        claims.key("identities")
        claims.beginObject()
        if let email {
            claims.key("email"); claims.beginArray(); claims.string(email); claims.endArray()
        }
        claims.endObject()
        claims.key("sign_in_provider"); claims.string("custom")
        claims.endObject()
        claims.endObject()

        let signingInput = Base64.encodeURLSafeUnpadded(header.bytes) + "." + Base64.encodeURLSafeUnpadded(claims.bytes)
        let signature = try Array(signingInput.utf8).withUnsafeBytes { try privateKey.signSHA256($0) }
        return signingInput + "." + Base64.encodeURLSafeUnpadded(signature)
    }
}
