import ArgumentParser
import Foundation
import GatewayServer

/// Every setting comes from its flag, else its `GATEWAY_*` environment variable, else the default.
struct Environment {
    var values = ProcessInfo.processInfo.environment

    func string(_ flag: String?, _ name: String) -> String? {
        flag ?? values[name].flatMap { $0.isEmpty ? nil : $0 }
    }

    func integer(_ flag: Int?, _ name: String) throws -> Int? {
        if let flag { return flag }
        guard let text = string(nil, name) else { return nil }
        guard let value = Int(text) else { throw ConfigurationError("\(name)=\(text) is not an integer") }
        return value
    }
}

struct DataOptions: ParsableArguments {
    @Option(help: "Directory for the gateway's data and local-mode keys (env GATEWAY_DATA_DIR; default ./data).")
    var dataDir: String?

    func directory(_ environment: Environment) -> URL {
        URL(fileURLWithPath: environment.string(dataDir, "GATEWAY_DATA_DIR") ?? "data", isDirectory: true)
    }
}

struct AuthOptions: ParsableArguments {
    @Option(help: "Firebase project whose tokens are accepted (env GATEWAY_FIREBASE_PROJECT_ID). Without it the gateway runs in local mode: it trusts only its own key and listens on loopback only.")
    var firebaseProjectId: String?

    @Option(help: "URL of the ID-token signing certificates (env GATEWAY_FIREBASE_CERT_URL; default Google's).")
    var firebaseCertUrl: String?

    @Option(help: "URL of the session-cookie signing certificates (env GATEWAY_FIREBASE_SESSION_CERT_URL; default Google's).")
    var firebaseSessionCertUrl: String?

    @Option(help: "Clock skew tolerated on token times, 0 to 300 seconds (env GATEWAY_AUTH_LEEWAY_SECONDS; default 60).")
    var authLeewaySeconds: Int?

    @Option(help: "Comma-separated tenant ids to accept; others are refused (env GATEWAY_FIREBASE_TENANTS; default: any tenant).")
    var firebaseTenants: String?

    @Flag(help: "Ask Identity Toolkit whether each token's user is disabled or has revoked its tokens; answers are cached 30 s (env GATEWAY_FIREBASE_CHECK_REVOKED=1; needs --firebase-service-account).")
    var firebaseCheckRevoked = false

    @Option(help: "Service account key file (JSON) for the revocation check (env GATEWAY_FIREBASE_SERVICE_ACCOUNT).")
    var firebaseServiceAccount: String?

    @Option(help: "Base URL of the Identity Toolkit API (env GATEWAY_IDENTITY_TOOLKIT_URL; default Google's).")
    var identityToolkitUrl: String?

    func settings(_ environment: Environment) throws -> AuthSettings {
        var settings = AuthSettings()
        settings.projectID = environment.string(firebaseProjectId, "GATEWAY_FIREBASE_PROJECT_ID")
        if let url = environment.string(firebaseCertUrl, "GATEWAY_FIREBASE_CERT_URL") { settings.idTokenKeysURL = url }
        if let url = environment.string(firebaseSessionCertUrl, "GATEWAY_FIREBASE_SESSION_CERT_URL") {
            settings.sessionCookieKeysURL = url
        }
        if let leeway = try environment.integer(authLeewaySeconds, "GATEWAY_AUTH_LEEWAY_SECONDS") {
            guard (0...300).contains(leeway) else {
                throw ConfigurationError("the auth leeway must be between 0 and 300 seconds, not \(leeway)")
            }
            settings.leewaySeconds = Int64(leeway)
        }
        if let tenants = environment.string(firebaseTenants, "GATEWAY_FIREBASE_TENANTS") {
            settings.tenants = Set(tenants.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty })
        }
        settings.checkRevoked = firebaseCheckRevoked || ["1", "true", "yes"].contains(environment.string(nil, "GATEWAY_FIREBASE_CHECK_REVOKED")?.lowercased() ?? "")
        settings.serviceAccountFile = environment.string(firebaseServiceAccount, "GATEWAY_FIREBASE_SERVICE_ACCOUNT")
        if let url = environment.string(identityToolkitUrl, "GATEWAY_IDENTITY_TOOLKIT_URL") { settings.identityToolkitURL = url }
        return settings
    }
}

/// A setting that cannot work, from a flag or the environment: printed as `Error: …` without the usage text.
struct ConfigurationError: Error, CustomStringConvertible {
    var description: String

    init(_ description: String) {
        self.description = description
    }
}
