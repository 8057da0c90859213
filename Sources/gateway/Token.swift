import ArgumentParser
import FirebaseAuth
import Foundation
import GatewayApplication
import GatewayServer

struct Token: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Mint a local-mode token (Firebase's claim layout, signed with the key in the data directory).",
        discussion: """
            Only a gateway in local mode (no Firebase project configured) with the same data directory accepts \
            these tokens. Send it as `authorization: Bearer <token>`.
            """
    )

    @Option(help: "The user id (the token's `sub`).")
    var uid: String

    @Option(help: "The user's email address (marked verified).")
    var email: String?

    @Flag(help: "Add the `admin` custom claim.")
    var admin = false

    @Option(help: "Seconds until the token expires (60 to 1209600).")
    var lifetime: Int64 = 3600

    @Flag(help: "Mint a session cookie instead of an ID token (send it as `cookie: session=<cookie>`).")
    var sessionCookie = false

    @OptionGroup var config: ConfigOptions
    @OptionGroup var data: DataOptions

    func validate() throws {
        guard (1...128).contains(uid.unicodeScalars.count) else { throw ValidationError("--uid must be 1 to 128 characters") }
        guard (60...1_209_600).contains(lifetime) else { throw ValidationError("--lifetime must be 60 s to 14 days") }
    }

    func run() throws {
        let resolved = try resolveConfiguration([data], config: config)
        if let project = resolved.settings.auth.projectID, let source = resolved.source(of: "auth.firebase_project_id") {
            FileHandle.standardError.write(Data("""
                warning: a Firebase project (\(project), from \(source.rawValue)) is configured; a gateway configured \
                with a Firebase project never accepts local-mode tokens.\n
                """.utf8))
        }
        let authority = try LocalAuthority.loadOrCreate(in: resolved.settings.dataDirectoryURL)
        let token = try authority.mint(
            uid: uid, email: email, admin: admin, now: SystemWallClock().now(), lifetimeSeconds: lifetime,
            kind: sessionCookie ? .sessionCookie : .idToken
        )
        print(token)
    }
}
