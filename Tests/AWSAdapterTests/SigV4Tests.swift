@testable import AWSAdapters
import GatewayApplication
import OpenSSLCrypto
import Testing

/// The signer against the public vectors: the AWS "Signature Version 4 Test Suite" (AWS General Reference;
/// vendored e.g. in bazelbuild/bazel `third_party/aws-sig-v4-test-suite/`) and the examples of the Amazon S3
/// API Reference ("Authenticating Requests: Using the Authorization Header" and "Using Query Parameters").
@Suite("SigV4 test vectors")
struct SigV4Tests {
    /// 2015-08-30T12:36:00Z, the test suite's time.
    static let suiteTime = UnixTime(seconds: 1_440_938_160)
    static let suiteCredentials = AWSCredentials(
        accessKeyID: "AKIDEXAMPLE", secretAccessKey: "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY", source: "test"
    )
    /// 2013-05-24T00:00:00Z, the S3 examples' time.
    static let s3Time = UnixTime(seconds: 1_369_353_600)
    static let s3Credentials = AWSCredentials(
        accessKeyID: "AKIAIOSFODNN7EXAMPLE", secretAccessKey: "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY", source: "test"
    )

    static func signature(of headers: [(name: String, value: String)]) -> (signed: String, signature: String)? {
        guard let authorization = headers.first(where: { $0.name == "Authorization" })?.value else { return nil }
        let signed = authorization.split(separator: "SignedHeaders=")[1].split(separator: ",")[0]
        let signature = authorization.split(separator: "Signature=")[1]
        return (String(signed), String(signature))
    }

    @Test func signingKeyOfTheGeneralReference() {
        let key = SigV4Signer.signingKey(
            secret: Self.suiteCredentials.secretAccessKey, date: "20150830", region: "us-east-1", service: "iam"
        )
        #expect(Hex.lowercase(key) == "c4afb1cc5771d871763a393e44b703571b55cc28424d1a5e86da6ed3c154a4b9")
    }

    struct SuiteCase: Sendable, CustomTestStringConvertible {
        var name: String
        var method = "GET"
        var path = "/"
        var query = ""
        var headers: [(name: String, value: String)] = []
        var body = ""
        var token: String?
        var signedHeaders: String
        var signature: String
        var testDescription: String { name }
    }

    static let suite: [SuiteCase] = [
        SuiteCase(
            name: "get-vanilla-query-order-key-case", query: "Param2=value2&Param1=value1", signedHeaders: "host;x-amz-date",
            signature: "b97d918cfa904a5beff61c982a1b6f458b799221646efd99d3219ec94cdf2500"
        ),
        SuiteCase(
            name: "post-x-www-form-urlencoded", method: "POST",
            headers: [("Content-Type", "application/x-www-form-urlencoded")], body: "Param1=value1",
            signedHeaders: "content-type;host;x-amz-date",
            signature: "ff11897932ad3f4e8b18135d722051e5ac45fc38421b1da7b9d196a0fe09473a"
        ),
        SuiteCase(
            name: "get-utf8", path: "/ሴ", signedHeaders: "host;x-amz-date",
            signature: "8318018e0b0f223aa2bbf98705b62bb787dc9c0e678f255a891fd03141be5d85"
        ),
        SuiteCase(
            name: "normalize-path/get-space", path: "/example space/", signedHeaders: "host;x-amz-date",
            signature: "652487583200325589f1fba4c7e578f72c47cb61beeca81406b39ddec1366741"
        ),
        SuiteCase(
            name: "normalize-path/get-slash-dot-slash", path: "/./", signedHeaders: "host;x-amz-date",
            signature: "5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31"
        ),
        SuiteCase(
            name: "get-header-value-trim", headers: [("My-Header1", " value1"), ("My-Header2", " \"a   b   c\"")],
            signedHeaders: "host;my-header1;my-header2;x-amz-date",
            signature: "acc3ed3afb60bb290fc8d2dd0098b9911fcaa05412b367055dee359757a9c736"
        ),
        SuiteCase(
            name: "get-header-key-duplicate",
            headers: [("My-Header1", "value2"), ("My-Header1", "value2"), ("My-Header1", "value1")],
            signedHeaders: "host;my-header1;x-amz-date",
            signature: "c9d5ea9f3f72853aea855b47ea873832890dbdd183b4468f858259531a5138ea"
        ),
        SuiteCase(
            name: "post-sts-token/post-sts-header-before", method: "POST",
            token: "AQoDYXdzEPT//////////wEXAMPLEtc764bNrC9SAPBSM22wDOk4x4HIZ8j4FZTwdQWLWsKWHGBuFqwAeMicRXmxfpSPfIeoIYRqTflfKD8YUuwthAx7mSEI/qkPpKPi/kMcGdQrmGdeehM4IC1NtBmUpp2wUE8phUZampKsburEDy0KPkyQDYwT7WZ0wq5VSXDvp75YU9HFvlRd8Tx6q6fE8YQcHNVXAkiY9q6d+xo0rKwT38xVqr7ZD0u0iPPkUL64lIZbqBAz+scqKmlzm8FDrypNC9Yjc8fPOLn9FX9KSYvKTr4rvx3iSIlTJabIQwj2ICCR/oLxBA==",
            signedHeaders: "host;x-amz-date;x-amz-security-token",
            signature: "85d96828115b5dc0cfc3bd16ad9e210dd772bbebba041836c64533a82be05ead"
        ),
    ]

    @Test(arguments: suite)
    func testSuite(_ vector: SuiteCase) {
        var credentials = Self.suiteCredentials
        credentials.sessionToken = vector.token
        let signer = SigV4Signer(region: "us-east-1", service: "service")
        let headers = signer.sign(
            .init(method: vector.method, host: "example.amazonaws.com", path: vector.path, query: vector.query, headers: vector.headers),
            payloadHash: Hex.lowercase(Digest.sha256(Array(vector.body.utf8))), credentials: credentials, at: Self.suiteTime
        )
        let got = Self.signature(of: headers)
        #expect(got?.signed == vector.signedHeaders)
        #expect(got?.signature == vector.signature)
        #expect(headers.contains { $0 == ("X-Amz-Date", "20150830T123600Z") })
    }

    @Test func canonicalQuerySortsAndEncodes() {
        #expect(SigV4Signer.canonicalQuery("Param2=value2&Param1=value1") == "Param1=value1&Param2=value2")
        #expect(SigV4Signer.canonicalQuery("uploads") == "uploads=")
        #expect(SigV4Signer.canonicalQuery("prefix=a/b&list-type=2") == "list-type=2&prefix=a%2Fb")
        #expect(SigV4Signer.canonicalQuery("a=b%2bc&a=b c") == "a=b%20c&a=b%2Bc")
        #expect(SigV4Signer.canonicalQuery("") == "")
    }

    // MARK: S3 API Reference examples

    @Test func s3GetObjectWithRange() {
        let signer = SigV4Signer(region: "us-east-1", service: "s3")
        let headers = signer.sign(
            .init(method: "GET", host: "examplebucket.s3.amazonaws.com", path: "/test.txt", headers: [
                ("Range", "bytes=0-9"), ("x-amz-content-sha256", SigV4Signer.emptyPayloadHash),
            ]),
            payloadHash: SigV4Signer.emptyPayloadHash, credentials: Self.s3Credentials, at: Self.s3Time
        )
        #expect(Self.signature(of: headers)?.signed == "host;range;x-amz-content-sha256;x-amz-date")
        #expect(Self.signature(of: headers)?.signature == "f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41")
    }

    @Test func s3PutObjectWithAnEncodedKey() {
        let body = Array("Welcome to Amazon S3.".utf8)
        let hash = Hex.lowercase(Digest.sha256(body))
        #expect(hash == "44ce7dd67c959e0d3524ffac1771dfbba87d2b6b4b4e99e42034a8b803f8b072")
        let signer = SigV4Signer(region: "us-east-1", service: "s3")
        let headers = signer.sign(
            .init(method: "PUT", host: "examplebucket.s3.amazonaws.com", path: "/" + SigV4Signer.encode("test$file.text", keepingSlash: true), headers: [
                ("Date", "Fri, 24 May 2013 00:00:00 GMT"), ("x-amz-storage-class", "REDUCED_REDUNDANCY"), ("x-amz-content-sha256", hash),
            ]),
            payloadHash: hash, credentials: Self.s3Credentials, at: Self.s3Time
        )
        #expect(Self.signature(of: headers)?.signed == "date;host;x-amz-content-sha256;x-amz-date;x-amz-storage-class")
        #expect(Self.signature(of: headers)?.signature == "98ad721746da40c64f1a55b78f14c238d841ea1380cd77a1b5971af0ece108bd")
    }

    @Test func s3ValuelessAndMultipleQueryParameters() {
        let signer = SigV4Signer(region: "us-east-1", service: "s3")
        func sign(_ query: String) -> String? {
            Self.signature(of: signer.sign(
                .init(method: "GET", host: "examplebucket.s3.amazonaws.com", path: "/", query: query, headers: [
                    ("x-amz-content-sha256", SigV4Signer.emptyPayloadHash),
                ]),
                payloadHash: SigV4Signer.emptyPayloadHash, credentials: Self.s3Credentials, at: Self.s3Time
            ))?.signature
        }
        #expect(sign("lifecycle") == "fea454ca298b7da1c68078a5d1bdbfbbe0d65c699e0f91ac7a200a0136783543")
        #expect(sign("max-keys=2&prefix=J") == "34b48302e7b5fa45bde8084f4b7868a86f0a534bc59db6670ed5711ef69dc6f7")
    }

    @Test func s3PresignedGet() {
        let signer = SigV4Signer(region: "us-east-1", service: "s3")
        let query = signer.presignedQuery(
            .init(method: "GET", host: "examplebucket.s3.amazonaws.com", path: "/test.txt"),
            expiresInSeconds: 86_400, credentials: Self.s3Credentials, at: Self.s3Time
        )
        #expect(query == """
            X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=AKIAIOSFODNN7EXAMPLE%2F20130524%2Fus-east-1%2Fs3%2Faws4_request\
            &X-Amz-Date=20130524T000000Z&X-Amz-Expires=86400&X-Amz-SignedHeaders=host\
            &X-Amz-Signature=aeeed9bbccd4d02ee5c0109b86d86835f995330da4c265957d157751f604d404
            """)
    }

    @Test func s3KeysAreEncodedOnceWithSlashesKept() {
        #expect("/bucket/" + SigV4Signer.encode("sha256/ab cd+é", keepingSlash: true) == "/bucket/sha256/ab%20cd%2B%C3%A9")
        // S3 signs that path as it is; other services would encode it again.
        #expect(SigV4Signer(region: "r", service: "s3").canonicalURI("/b/a%20b") == "/b/a%20b")
        #expect(SigV4Signer(region: "r", service: "sns").canonicalURI("/b/a%20b") == "/b/a%2520b")
    }

    @Test func theSecretNeverAppearsInWhatIsSent() {
        let credentials = AWSCredentials(
            accessKeyID: "AKIDEXAMPLE", secretAccessKey: "not-to-be-seen-anywhere", sessionToken: "session-token", source: "test"
        )
        let headers = SigV4Signer(region: "us-east-1", service: "dynamodb").sign(
            .init(method: "POST", host: "h", path: "/"), payloadHash: SigV4Signer.emptyPayloadHash,
            credentials: credentials, at: Self.suiteTime
        )
        #expect(!headers.contains { $0.value.contains("not-to-be-seen") })
        #expect(!"\(credentials)".contains("not-to-be-seen") && !"\(credentials)".contains("session-token"))
    }
}
