import ArgumentParser
import FirebaseAuth
import Foundation
import GatewayApplication
import GatewayServer
import OpenSSLCrypto

/// Token verifications per second on one thread, the verification cache on and off.
struct AuthBench: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "auth",
        abstract: "Verify one Firebase ID token repeatedly: prints verifications/s uncached and cached (one thread)."
    )

    @Option(help: "PEM certificate of the signing key.")
    var certificate: String

    @Option(help: "The key id the token names.")
    var kid: String

    @Option(help: "File holding the token.")
    var tokenFile: String

    @Option(help: "The token's Firebase project.")
    var project: String

    @Option(help: "Seconds per measurement.")
    var seconds: Double = 3

    @Option(help: "Run exactly this many uncached verifications and print nothing else (for instruction counts under valgrind).")
    var iterations: Int?

    func run() async throws {
        let token = try String(contentsOfFile: tokenFile, encoding: .utf8).trimmingCharacters(in: .whitespacesAndNewlines)
        let pem = Array(try Data(contentsOf: URL(fileURLWithPath: certificate)))
        let keys = StaticSigningKeys([kid: try RSAPublicKey(certificatePEM: pem)])
        if let iterations {
            let verifier = FirebaseTokenVerifier(
                configuration: .init(projectID: project), idTokenKeys: keys, sessionCookieKeys: keys,
                clock: SystemWallClock(), cacheCapacity: 0
            )
            for _ in 0..<iterations { _ = try await verifier.verify(token, kind: .idToken) }
            return
        }
        for (label, capacity) in [("uncached", 0), ("cached", 10_000)] {
            let verifier = FirebaseTokenVerifier(
                configuration: .init(projectID: project), idTokenKeys: keys, sessionCookieKeys: keys,
                clock: SystemWallClock(), cacheCapacity: capacity
            )
            _ = try await verifier.verify(token, kind: .idToken)  // fails loudly if the token is not valid
            let rate = try await measure(seconds: seconds) { _ = try await verifier.verify(token, kind: .idToken) }
            print("\(label) \(Int(rate))")
        }
    }

    /// Calls per second of `body`, run back to back for `seconds`.
    private func measure(seconds: Double, _ body: () async throws -> Void) async throws -> Double {
        let clock = ContinuousClock()
        let end = clock.now + .milliseconds(Int(seconds * 1000))
        let start = clock.now
        var count = 0
        while clock.now < end {
            for _ in 0..<64 { try await body() }
            count += 64
        }
        let elapsed = clock.now - start
        return Double(count) / (Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) * 1e-18)
    }
}
