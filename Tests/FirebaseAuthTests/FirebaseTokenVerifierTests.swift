@testable import FirebaseAuth
import GatewayApplication
import OpenSSLCrypto
import ProtoRuntime
import Synchronization
import Testing

/// Signs arbitrary header and claims with a test key, so malformed and hostile tokens can be built.
struct TestSigner: Sendable {
    let key: RSAPrivateKey
    let kid: String
    let publicKey: RSAPublicKey

    static let shared = TestSigner(kid: "test-kid-1")
    static let other = TestSigner(kid: "test-kid-2")

    init(kid: String) {
        key = try! RSAPrivateKey.generate()
        self.kid = kid
        publicKey = try! RSAPublicKey(certificatePEM: try! key.selfSignedCertificatePEM(commonName: "test", validDays: 1))
    }

    func token(header: String? = nil, claims: String, signature: [UInt8]? = nil) -> String {
        let h = Base64.encodeURLSafeUnpadded(Array((header ?? #"{"alg":"RS256","kid":"\#(kid)","typ":"JWT"}"#).utf8))
        let p = Base64.encodeURLSafeUnpadded(Array(claims.utf8))
        let input = h + "." + p
        let s = signature ?? (try! Array(input.utf8).withUnsafeBytes { try key.signSHA256($0) })
        return input + "." + Base64.encodeURLSafeUnpadded(s)
    }
}

let now: Int64 = 1_700_000_000

func claims(
    aud: String = "demo-project", iss: String = "https://securetoken.google.com/demo-project",
    sub: String = "uid-123", iat: Int64 = now - 10, exp: Int64 = now + 3590, extra: String = ""
) -> String {
    #"{"iss":"\#(iss)","aud":"\#(aud)","auth_time":\#(iat),"user_id":"\#(sub)","sub":"\#(sub)","iat":\#(iat),"exp":\#(exp),"email":"a@b.c","email_verified":true,"firebase":{"identities":{"email":["a@b.c"]},"sign_in_provider":"password"}\#(extra)}"#
}

func verifier(leeway: Int64 = 60, tenants: Set<String>? = nil) -> FirebaseTokenVerifier {
    var configuration = FirebaseTokenVerifier.Configuration(projectID: "demo-project")
    configuration.leewaySeconds = leeway
    configuration.allowedTenants = tenants
    return FirebaseTokenVerifier(
        configuration: configuration,
        idTokenKeys: StaticSigningKeys([TestSigner.shared.kid: TestSigner.shared.publicKey]),
        sessionCookieKeys: StaticSigningKeys([TestSigner.other.kid: TestSigner.other.publicKey]),
        clock: FakeWallClock(UnixTime(seconds: now)), cacheCapacity: 0
    )
}

@Suite("Firebase token verification")
struct FirebaseTokenVerifierTests {
    let signer = TestSigner.shared

    @Test func validTokenGivesThePrincipal() async throws {
        let p = try await verifier().verify(signer.token(claims: claims(extra: #","admin":true,"tier":"gold""#)), kind: .idToken)
        #expect(p.uid == "uid-123" && p.email == "a@b.c" && p.emailVerified && p.signInProvider == "password")
        #expect(p.isAdmin && p.customClaims["tier"] == .string("gold") && p.customClaims["admin"] == .bool(true))
        #expect(p.expiresAt == now + 3590)
    }

    static let rejected: [(String, TokenVerificationError.Reason, @Sendable (TestSigner) -> String)] = [
        ("expired", .expired, { $0.token(claims: claims(iat: now - 4000, exp: now - 61)) }),
        ("issued in the future", .notYetValid, { $0.token(claims: claims(iat: now + 61)) }),
        ("wrong audience", .wrongAudience, { $0.token(claims: claims(aud: "other")) }),
        ("wrong issuer", .wrongIssuer, { $0.token(claims: claims(iss: "https://evil.example/demo-project")) }),
        ("empty sub", .invalidSubject, { $0.token(claims: claims(sub: "")) }),
        ("129-character sub", .invalidSubject, { $0.token(claims: claims(sub: String(repeating: "a", count: 129))) }),
        ("custom token audience", .customToken, { $0.token(claims: claims(aud: FirebaseTokenVerifier.customTokenAudience)) }),
        ("alg none", .unsupportedAlgorithm, { $0.token(header: #"{"alg":"none","kid":"test-kid-1"}"#, claims: claims()) }),
        ("alg none, unsigned", .unsupportedAlgorithm, { signer in
            let parts = signer.token(header: #"{"alg":"none","kid":"test-kid-1"}"#, claims: claims()).split(separator: ".")
            return "\(parts[0]).\(parts[1])."
        }),
        ("RS256 with an empty signature", .invalidSignature, { signer in
            let parts = signer.token(claims: claims()).split(separator: ".")
            return "\(parts[0]).\(parts[1])."
        }),
        ("HS256", .unsupportedAlgorithm, { $0.token(header: #"{"alg":"HS256","kid":"test-kid-1"}"#, claims: claims()) }),
        ("RS512", .unsupportedAlgorithm, { $0.token(header: #"{"alg":"RS512","kid":"test-kid-1"}"#, claims: claims()) }),
        ("lower-case rs256", .unsupportedAlgorithm, { $0.token(header: #"{"alg":"rs256","kid":"test-kid-1"}"#, claims: claims()) }),
        ("jku header", .embeddedKey, { $0.token(header: #"{"alg":"RS256","kid":"test-kid-1","jku":"https://evil.example/keys"}"#, claims: claims()) }),
        ("jwk header", .embeddedKey, { $0.token(header: #"{"alg":"RS256","kid":"test-kid-1","jwk":{"kty":"RSA"}}"#, claims: claims()) }),
        ("missing kid", .malformed, { $0.token(header: #"{"alg":"RS256"}"#, claims: claims()) }),
        ("unknown kid", .unknownKey, { $0.token(header: #"{"alg":"RS256","kid":"nope"}"#, claims: claims()) }),
        ("missing exp", .missingClaim, { $0.token(claims: #"{"iss":"https://securetoken.google.com/demo-project","aud":"demo-project","sub":"u","iat":\#(now)}"#) }),
        ("session cookie issuer on an ID token", .wrongIssuer, { $0.token(claims: claims(iss: "https://session.firebase.google.com/demo-project")) }),
        ("signature from another key", .invalidSignature, { signer in
            let good = TestSigner.other.token(header: #"{"alg":"RS256","kid":"test-kid-1"}"#, claims: claims())
            return good
        }),
        ("tampered payload", .invalidSignature, { signer in
            let token = signer.token(claims: claims())
            let parts = token.split(separator: ".")
            let forged = Base64.encodeURLSafeUnpadded(Array(claims(sub: "admin-uid").utf8))
            return "\(parts[0]).\(forged).\(parts[2])"
        }),
        ("truncated signature", .invalidSignature, { signer in
            let input = Array(signer.token(claims: claims()).split(separator: ".").prefix(2).joined(separator: ".").utf8)
            let signature = try! input.withUnsafeBytes { try signer.key.signSHA256($0) }
            return signer.token(claims: claims(), signature: Array(signature.dropLast()))
        }),
        ("one-byte signature", .invalidSignature, { $0.token(claims: claims(), signature: [1]) }),
        ("padded segment", .malformed, { signer in
            let parts = signer.token(claims: claims()).split(separator: ".")
            return "\(parts[0])=.\(parts[1]).\(parts[2])"
        }),
        ("four segments", .malformed, { $0.token(claims: claims()) + ".e30" }),
        ("two segments", .malformed, { String($0.token(claims: claims()).split(separator: ".").prefix(2).joined(separator: ".")) }),
        ("standard alphabet", .malformed, { signer in
            signer.token(claims: claims()).replacingOccurrences(of: "-", with: "+").replacingOccurrences(of: "_", with: "/") + "+"
        }),
        ("oversize token", .malformed, { $0.token(claims: claims(extra: #","pad":"\#(String(repeating: "x", count: 20_000))""#)) }),
        ("payload not JSON", .malformed, { signer in
            let parts = signer.token(claims: claims()).split(separator: ".")
            return "\(parts[0]).\(Base64.encodeURLSafeUnpadded(Array("nope".utf8))).\(parts[2])"
        }),
    ]

    @Test(arguments: rejected.indices)
    func rejectedForTheRightReason(index: Int) async {
        let (name, reason, make) = Self.rejected[index]
        await #expect(throws: TokenVerificationError.self, "\(name)") {
            _ = try await verifier().verify(make(signer), kind: .idToken)
        }
        do {
            _ = try await verifier().verify(make(signer), kind: .idToken)
        } catch {
            #expect(error.reason == reason, "\(name): \(error.message)")
            #expect(!error.message.contains("eyJ"), "\(name): the message must not echo the token")
        }
    }

    /// The caller reads these: they say which check failed, in words (as the Firebase Admin SDKs' errors do).
    @Test func messagesSayWhatFailed() async {
        func message(_ token: String, _ kind: TokenKind = .idToken) async -> String? {
            do {
                _ = try await verifier(leeway: 0).verify(token, kind: kind)
                return nil
            } catch {
                return error.message
            }
        }
        #expect(await message(signer.token(claims: claims(exp: now - 1))) == "ID token expired at 2023-11-14T22:13:19Z; get a fresh token from the client SDK")
        #expect(await message(signer.token(header: #"{"alg":"HS256","kid":"test-kid-1"}"#, claims: claims())) == #"ID token has unsupported algorithm "HS256"; expected "RS256""#)
        #expect(await message(signer.token(claims: claims(aud: "other"))) == "ID token was issued for a different Firebase project")
        #expect(await message(signer.token(claims: claims()), .sessionCookie) == "session cookie has an unexpected issuer; expected https://session.firebase.google.com/demo-project")
    }

    /// One key's verification template is copied by many threads at once: every verdict must still be right.
    @Test func concurrentVerificationsWithOneKey() async {
        let verifier = verifier()
        let good = signer.token(claims: claims())
        let parts = good.split(separator: ".")
        let forged = "\(parts[0]).\(Base64.encodeURLSafeUnpadded(Array(claims(sub: "mallory").utf8))).\(parts[2])"
        let verdicts = await withTaskGroup(of: (Int, Int).self) { group in
            for _ in 0..<8 {
                group.addTask {
                    var (accepted, refused) = (0, 0)
                    for i in 0..<100 {
                        let valid = (try? await verifier.verify(i.isMultiple(of: 2) ? good : forged, kind: .idToken)) != nil
                        if valid { accepted += 1 } else { refused += 1 }
                    }
                    return (accepted, refused)
                }
            }
            return await group.reduce(into: [(Int, Int)]()) { $0.append($1) }
        }
        #expect(verdicts.allSatisfy { $0 == (50, 50) })
    }

    @Test func leewayAcceptsSlightlyExpiredTokens() async throws {
        _ = try await verifier(leeway: 60).verify(signer.token(claims: claims(exp: now - 30)), kind: .idToken)
        await #expect(throws: TokenVerificationError.self) {
            _ = try await verifier(leeway: 0).verify(signer.token(claims: claims(exp: now - 1)), kind: .idToken)
        }
    }

    @Test func sessionCookiesUseTheirOwnIssuerAndKeys() async throws {
        let cookie = TestSigner.other.token(claims: claims(iss: "https://session.firebase.google.com/demo-project"))
        let p = try await verifier().verify(cookie, kind: .sessionCookie)
        #expect(p.kind == .sessionCookie)
        await #expect(throws: TokenVerificationError.self) { _ = try await verifier().verify(cookie, kind: .idToken) }
        let idToken = signer.token(claims: claims())
        await #expect(throws: TokenVerificationError.self) { _ = try await verifier().verify(idToken, kind: .sessionCookie) }
    }

    @Test func tenantAllowList() async throws {
        let tenantToken = signer.token(claims: claims(extra: "").replacingOccurrences(of: #""sign_in_provider":"password""#, with: #""sign_in_provider":"password","tenant":"t-1""#))
        #expect(try await verifier().verify(tenantToken, kind: .idToken).tenant == "t-1")
        #expect(try await verifier(tenants: ["t-1"]).verify(tenantToken, kind: .idToken).tenant == "t-1")
        await #expect(throws: TokenVerificationError.self) { _ = try await verifier(tenants: ["t-2"]).verify(tenantToken, kind: .idToken) }
        await #expect(throws: TokenVerificationError.self) { _ = try await verifier(tenants: ["t-1"]).verify(signer.token(claims: claims()), kind: .idToken) }
    }

    @Test func localAuthorityMintsTokensTheVerifierAccepts() async throws {
        let directory = FileManagerTemporaryDirectory()
        let authority = try LocalAuthority.loadOrCreate(in: directory.url)
        let again = try LocalAuthority.loadOrCreate(in: directory.url)
        #expect(authority.kid == again.kid)  // created once
        let clock = FakeWallClock(UnixTime(seconds: now))
        let keys = try authority.signingKeys()
        let verifier = FirebaseTokenVerifier(
            configuration: .init(projectID: LocalAuthority.projectID), idTokenKeys: keys, sessionCookieKeys: keys, clock: clock
        )
        let token = try authority.mint(uid: "alice", email: "alice@example.com", admin: true, now: clock.now())
        let p = try await verifier.verify(token, kind: .idToken)
        #expect(p.uid == "alice" && p.email == "alice@example.com" && p.isAdmin && p.signInProvider == "custom")
        // The same token under a real project id is refused.
        let strict = FirebaseTokenVerifier(configuration: .init(projectID: "demo-project"), idTokenKeys: keys, sessionCookieKeys: keys, clock: clock)
        await #expect(throws: TokenVerificationError.self) { _ = try await strict.verify(token, kind: .idToken) }
    }
}
