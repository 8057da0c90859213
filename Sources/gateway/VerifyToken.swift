import ArgumentParser
import CurlHTTP
import Foundation
import GatewayApplication
import GatewayServer
import NIOPosix

struct VerifyToken: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "verify-token",
        abstract: "Verify tokens read from standard input, one per line, as the server would.",
        discussion: """
            Prints one JSON object per token: {"valid":true,"uid":…} or {"valid":false,"code":"UNAUTHENTICATED",\
            "reason":"expired","message":…}. Uses the same settings as `serve`, so it answers "why is this token \
            refused?" without a client.
            """
    )

    @Flag(help: "The tokens are session cookies, not ID tokens.")
    var sessionCookies = false

    @OptionGroup var config: ConfigOptions
    @OptionGroup var data: DataOptions
    @OptionGroup var auth: AuthOptions

    func run() async throws {
        let settings = try resolveConfiguration([data, auth], config: config).settings
        let authentication = try Authentication(
            settings: settings.auth, dataDirectory: settings.dataDirectoryURL,
            http: CurlHTTPClient(), clock: SystemWallClock()
        )
        let kind: TokenKind = sessionCookies ? .sessionCookie : .idToken
        // readLine blocks: keep it off the cooperative threads that refresh keys.
        while let line = try await NIOThreadPool.singleton.runIfActive({ readLine(strippingNewline: true) }) {
            let token = line.trimmingCharacters(in: .whitespaces)
            guard !token.isEmpty else { continue }
            var verdict: [String: Any]
            do {
                let principal = try await authentication.verifier.verify(token, kind: kind)
                verdict = ["valid": true, "uid": principal.uid, "admin": principal.isAdmin, "expires_at": principal.expiresAt]
                if let email = principal.email { verdict["email"] = email }
                if let tenant = principal.tenant { verdict["tenant"] = tenant }
            } catch {
                verdict = [
                    "valid": false, "code": "\(AuthInterceptor.statusCode(for: error.reason))",
                    "reason": error.reason.rawValue, "message": error.message,
                ]
            }
            let json = try JSONSerialization.data(withJSONObject: verdict, options: [.sortedKeys])
            FileHandle.standardOutput.write(json + Data("\n".utf8))
        }
    }
}
