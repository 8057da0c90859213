import GatewayApplication

/// What the token verifier must survive: any bytes as a bearer token are refused or accepted, never a crash,
/// a hang or unbounded memory. The JWS split and base64url and JSON decoding (`CompactJWT`), then the header
/// and claim checks, for ID tokens and session cookies; the signature check is OpenSSL's and needs a key the
/// input cannot forge. The fuzz target (`scripts/fuzz auth`) and the corpus replay
/// (`Tests/FirebaseAuthTests/FuzzCorpus`) run it.
public enum TokenFuzzing {
    private static let verifier = FirebaseTokenVerifier(
        configuration: .init(projectID: "fuzz-project"), idTokenKeys: StaticSigningKeys([:]),
        sessionCookieKeys: StaticSigningKeys([:]), clock: FakeWallClock(UnixTime(seconds: 1_800_000_000)), cacheCapacity: 0
    )

    public static func check(_ bytes: UnsafeRawBufferPointer) {
        let token = String(decoding: bytes, as: UTF8.self)
        guard let jwt = try? CompactJWT(token) else { return }
        for kind in [TokenKind.idToken, .sessionCookie] {
            _ = try? verifier.checkClaims(jwt, kind: kind, now: 1_800_000_000)
        }
    }
}
