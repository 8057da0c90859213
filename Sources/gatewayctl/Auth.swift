import ArgumentParser
#if canImport(Glibc)
import Glibc
#endif
import Foundation
import GatewayClient

struct Login: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Sign in and save the credentials (mode 0600) for later calls.",
        discussion: """
            --local: a local-mode gateway (no Firebase project) trusts the key in its data directory; tokens are \
            minted with it as needed (the same tokens as `gateway token`).
            --email E --api-key K: Firebase email/password sign-in (the password is read from the terminal, or \
            from standard input with --password-stdin); the ID token is refreshed before it expires.
            """
    )

    @Flag(help: "Sign in to a local-mode gateway with its data directory's key.")
    var local = false

    @Option(help: "The local gateway's data directory (default ./data).")
    var dataDir = "data"

    @Option(help: "With --local: the user id (token subject); default the login name.")
    var uid: String?

    @Option(help: "With --local: the email claim; with Firebase: the account's email.")
    var email: String?

    @Flag(help: "With --local: add the admin claim.")
    var admin = false

    @Option(help: "Firebase Web API key of the project.")
    var apiKey: String?

    @Flag(help: "Read the password from standard input instead of the terminal.")
    var passwordStdin = false

    @Option(help: "Identity Toolkit base URL (for emulators and tests).")
    var identityToolkitUrl = FirebaseSignIn.identityToolkitURL

    @Option(help: "Secure Token base URL (for emulators and tests).")
    var secureTokenUrl = FirebaseSignIn.secureTokenURL

    func validate() throws {
        guard local != (apiKey != nil) else {
            throw ValidationError("choose one: --local, or --email and --api-key (Firebase)")
        }
        if apiKey != nil && email == nil { throw ValidationError("--api-key needs --email") }
    }

    func run() async throws {
        if local {
            let directory = URL(fileURLWithPath: dataDir, isDirectory: true).standardizedFileURL.path
            guard FileManager.default.fileExists(atPath: "\(directory)/local-signing-key.pem") else {
                throw LocalFailure("no local-mode key in \(directory): start the gateway (local mode) with --data-dir \(dataDir) first")
            }
            let identity = SavedCredentials.LocalIdentity(
                dataDirectory: directory, uid: uid ?? ProcessInfo.processInfo.environment["USER"] ?? "local-user", email: email, admin: admin
            )
            _ = try LocalTokens.mint(identity)
            try SavedCredentials.local(identity).save()
            FileHandle.standardError.write(Data("signed in as \(identity.uid) (local mode, \(directory))\n".utf8))
            return
        }
        guard let apiKey, let email else { return }
        let password = try readPassword()
        let signIn = FirebaseSignIn(apiKey: apiKey, identityToolkitURL: identityToolkitUrl, secureTokenURL: secureTokenUrl)
        let credentials: FirebaseCredentials
        do {
            credentials = try await signIn.signIn(email: email, password: password)
        } catch let refusal as FirebaseSignIn.Refusal {
            throw LocalFailure("sign-in failed: \(refusal)")
        }
        try SavedCredentials.firebase(credentials).save()
        FileHandle.standardError.write(Data("signed in as \(email)\n".utf8))
    }

    private func readPassword() throws -> String {
        if passwordStdin {
            guard let line = readLine(strippingNewline: true), !line.isEmpty else { throw UsageError("no password on standard input") }
            return line
        }
        guard isatty(0) == 1 else { throw UsageError("no terminal to ask for the password: use --password-stdin") }
        guard let pointer = getpass("Password: ") else { throw UsageError("no password given") }
        return String(cString: pointer)
    }
}

struct Logout: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Forget the saved credentials.")

    func run() async throws {
        let removed = SavedCredentials.remove()
        FileHandle.standardError.write(Data((removed ? "signed out\n" : "not signed in\n").utf8))
    }
}

struct WhoAmI: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "whoami", abstract: "Show the token's claims and expiry, and the caller's user.")

    @OptionGroup var options: GlobalOptions

    func run() async throws {
        let context = try Context(options)
        guard let source = context.token else {
            throw LocalFailure("not signed in: run `gatewayctl login --local` (or pass --token)")
        }
        let token = try await source.token(forceRefresh: false)
        let claims = TokenClaims(token: token)?.claims ?? [:]
        var summary: [String: Any] = [:]
        for key in ["sub", "email", "admin", "exp", "iat", "iss", "aud"] {
            if let value = claims[key] { summary[key == "sub" ? "uid" : key] = value }
        }
        if let exp = claims["exp"] as? NSNumber {
            summary["expires_in_seconds"] = exp.int64Value - Int64(Date().timeIntervalSince1970)
        }
        let printer = Printer(format: context.output)
        let json = try JSONSerialization.data(withJSONObject: ["token": summary], options: [.sortedKeys, .withoutEscapingSlashes])
        printer.write(context.output == .json ? String(decoding: json, as: UTF8.self) : Printer.indented(String(decoding: json, as: UTF8.self)))
        do {
            let user = try await context.withConnection { try await $0.users.getCurrentUser(.init()) }
            try printer.message(user)
        } catch let error as RPCError where error.code == .notFound || error.code == .failedPrecondition {
            FileHandle.standardError.write(Data("no user for this account yet: create it with `gatewayctl user create`\n".utf8))
        }
    }
}
