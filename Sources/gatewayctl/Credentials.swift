#if canImport(Glibc)
import Glibc
#endif
import FirebaseAuth
import Foundation
import GatewayApplication
import GatewayClient

/// What `login` saved in `~/.config/gatewayctl/credentials.json` (mode 0600): a local-mode identity, whose
/// tokens are minted when needed with the gateway's local key, or a Firebase sign-in with its refresh token.
enum SavedCredentials: Sendable {
    case local(LocalIdentity)
    case firebase(FirebaseCredentials)

    /// The file's shape: `{"local": {…}}` or `{"firebase": {…}}`.
    private struct File: Codable {
        var local: LocalIdentity?
        var firebase: FirebaseCredentials?
    }

    struct LocalIdentity: Codable, Sendable {
        var dataDirectory: String
        var uid: String
        var email: String?
        var admin: Bool
    }

    static var file: URL { Context.configDirectory.appendingPathComponent("credentials.json") }

    static func load() throws -> SavedCredentials? {
        guard let data = FileManager.default.contents(atPath: file.path) else { return nil }
        let saved = try? JSONDecoder().decode(File.self, from: data)
        if let local = saved?.local { return .local(local) }
        if let firebase = saved?.firebase { return .firebase(firebase) }
        throw LocalFailure("\(file.path) is damaged: log in again with `gatewayctl login`")
    }

    /// Writes the file with mode 0600 from the start (a temporary file renamed over the old one), in a folder
    /// only its owner may enter.
    func save() throws {
        let folder = Self.file.deletingLastPathComponent().path
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .prettyPrinted]
        let file: File = switch self {
        case .local(let identity): File(local: identity)
        case .firebase(let credentials): File(firebase: credentials)
        }
        let data = try encoder.encode(file)
        let temporary = "\(Self.file.path).\(getpid()).tmp"
        let fd = open(temporary, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o600)
        guard fd >= 0 else { throw LocalFailure("cannot write \(temporary) (errno \(errno))") }
        let written = data.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
        fsync(fd)
        close(fd)
        guard written == data.count, rename(temporary, Self.file.path) == 0 else {
            unlink(temporary)
            throw LocalFailure("cannot write \(Self.file.path) (errno \(errno))")
        }
    }

    static func remove() -> Bool {
        (try? FileManager.default.removeItem(at: file)) != nil
    }

    /// The token source for calls: fresh local tokens, or the Firebase ID token refreshed (and saved) as it expires.
    func tokenSource() throws -> any TokenSource {
        switch self {
        case .local(let identity):
            return LocalTokens(identity: identity)
        case .firebase(let credentials):
            return RefreshingFirebaseToken(credentials) { fresh in try? SavedCredentials.firebase(fresh).save() }
        }
    }
}

/// Tokens minted with a local-mode gateway's key, as `gateway token` does.
struct LocalTokens: TokenSource {
    let identity: SavedCredentials.LocalIdentity

    func token(forceRefresh: Bool) async throws -> String {
        try Self.mint(identity)
    }

    static func mint(_ identity: SavedCredentials.LocalIdentity, lifetime: Int64 = 3600) throws -> String {
        let authority: LocalAuthority
        do {
            authority = try LocalAuthority.loadOrCreate(in: URL(fileURLWithPath: identity.dataDirectory, isDirectory: true))
        } catch {
            throw LocalFailure("no local-mode key in \(identity.dataDirectory): \(error)")
        }
        var now = timespec()
        clock_gettime(CLOCK_REALTIME, &now)
        return try authority.mint(
            uid: identity.uid, email: identity.email, admin: identity.admin, now: UnixTime(seconds: Int64(now.tv_sec)),
            lifetimeSeconds: lifetime, kind: .idToken
        )
    }
}

/// The claims of a token, read without checking its signature (the gateway checks it): for `whoami`.
struct TokenClaims {
    let claims: [String: Any]

    init?(token: String) {
        let parts = token.split(separator: ".")
        guard parts.count == 3 else { return nil }
        var base64 = parts[1].replacingOccurrences(of: "-", with: "+").replacingOccurrences(of: "_", with: "/")
        while base64.count % 4 != 0 { base64 += "=" }
        guard let data = Data(base64Encoded: base64), let object = try? JSONSerialization.jsonObject(with: data) as? [String: Any] else {
            return nil
        }
        claims = object
    }
}
