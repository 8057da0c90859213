@testable import FirebaseAuth
import GatewayApplication
import OpenSSLCrypto
import Testing

@Suite struct VerificationCacheTests {
    let token = TestSigner.shared.token(claims: claims())

    @Test func keyIsTheKindAndTheTokensSHA256() {
        let key = VerificationCache.key(token: token, kind: .idToken)
        let digest = withUnsafeBytes(of: key.digest) { Array($0) }
        #expect(digest == Digest.sha256(Array(token.utf8)))
        #expect(key == VerificationCache.key(token: String(token), kind: .idToken))
        #expect(key != VerificationCache.key(token: token, kind: .sessionCookie))
        #expect(key != VerificationCache.key(token: token + "x", kind: .idToken))
    }

    @Test func aPrincipalIsFoundByItsKeyUntilItsTokenExpires() {
        let cache = VerificationCache(capacity: 4)
        let key = VerificationCache.key(token: token, kind: .idToken)
        let principal = Principal(uid: "uid-1", expiresAt: now + 60)
        cache.store(principal, for: key, now: now)
        #expect(cache.principal(for: key, now: now, leeway: 0)?.uid == "uid-1")
        #expect(cache.principal(for: VerificationCache.key(token: token, kind: .sessionCookie), now: now, leeway: 0) == nil)
        #expect(cache.principal(for: key, now: now + 61, leeway: 0) == nil)
    }
}
