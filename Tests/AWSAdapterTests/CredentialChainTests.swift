@testable import AWSAdapters
import CurlHTTP
import Foundation
import GatewayApplication
import MotoSupport
import Testing

/// The standard credential chain: its order, the shared files, web identity against moto's STS, the container
/// endpoint (a local server) and refreshing temporary credentials once, before they expire.
@Suite("AWS credential chain")
struct CredentialChainTests {
    static let http = CurlHTTPClient()
    static let start = UnixTime(seconds: 1_750_000_000)

    func chain(_ environment: [String: String], clock: any WallClock = FakeWallClock(start), sts: String? = nil) -> AWSCredentialChain {
        AWSCredentialChain(environment: environment, http: Self.http, clock: clock, region: "us-east-1", stsEndpointURL: sts)
    }

    func withFiles(_ files: [String: String], _ body: (String) async throws -> Void) async throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("aws-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: "\(directory)/.aws", withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        for (name, text) in files { try text.write(toFile: "\(directory)/.aws/\(name)", atomically: true, encoding: .utf8) }
        try await body(directory)
    }

    @Test func theEnvironmentComesFirst() async throws {
        try await withFiles(["credentials": "[default]\naws_access_key_id = FROMFILE\naws_secret_access_key = s\n"]) { home in
            let found = try await chain(["HOME": home, "AWS_ACCESS_KEY_ID": "FROMENV", "AWS_SECRET_ACCESS_KEY": "s", "AWS_SESSION_TOKEN": "t"]).credentials()
            #expect(found.accessKeyID == "FROMENV" && found.sessionToken == "t" && found.source == "environment")
            #expect(try await chain(["HOME": home]).credentials().accessKeyID == "FROMFILE")
        }
    }

    @Test func profilesComeFromTheCredentialsFileThenTheConfigFile() async throws {
        let credentials = """
            # comment
            [default]
            aws_access_key_id=DEFAULTKEY
            aws_secret_access_key = default-secret
            [work]
            aws_access_key_id = WORKKEY
            aws_secret_access_key = work-secret
            aws_session_token = work-token
            """
        let config = "[profile cfg]\nregion = eu-west-1\naws_access_key_id = CFGKEY\naws_secret_access_key = cfg-secret\n"
        try await withFiles(["credentials": credentials, "config": config]) { home in
            #expect(try await chain(["HOME": home]).credentials().accessKeyID == "DEFAULTKEY")
            let work = try await chain(["HOME": home, "AWS_PROFILE": "work"]).credentials()
            #expect(work.accessKeyID == "WORKKEY" && work.secretAccessKey == "work-secret" && work.sessionToken == "work-token")
            #expect(try await chain(["HOME": home, "AWS_PROFILE": "cfg"]).credentials().accessKeyID == "CFGKEY")
            let missing = await #expect(throws: AWSCredentialsError.self) { _ = try await chain(["HOME": home, "AWS_PROFILE": "nope"]).credentials() }
            #expect(missing?.message.contains("profile nope") == true)
        }
    }

    @Test func nothingFoundSaysWhatToSet() async throws {
        try await withFiles([:]) { home in
            let error = await #expect(throws: AWSCredentialsError.self) { _ = try await chain(["HOME": home]).credentials() }
            #expect(error?.message.contains("AWS_ACCESS_KEY_ID") == true && error?.message.contains("AWS_WEB_IDENTITY_TOKEN_FILE") == true)
        }
    }

    @Test func webIdentityIsExchangedWithSTSAndTheTokenFileIsReadEachTime() async throws {
        let moto = try await MotoServer.start()
        try await withFiles(["token": "eyJ.web.identity"]) { home in
            let clock = FakeWallClock(UnixTime(seconds: Int64(Date().timeIntervalSince1970)))
            let provider = chain([
                "HOME": home, "AWS_WEB_IDENTITY_TOKEN_FILE": "\(home)/.aws/token", "AWS_ROLE_ARN": "arn:aws:iam::123456789012:role/gateway",
                "AWS_ROLE_SESSION_NAME": "gw-test",
            ], clock: clock, sts: moto.endpoint)
            let found = try await provider.credentials()
            #expect(found.accessKeyID.hasPrefix("ASIA") && found.sessionToken != nil && found.expiration != nil)
            #expect(found.source.contains("web identity"))
            try "".write(toFile: "\(home)/.aws/token", atomically: true, encoding: .utf8)
            clock.advance(seconds: 3600)
            let refreshed = await #expect(throws: AWSCredentialsError.self) { _ = try await provider.credentials() }
            #expect(refreshed?.message.contains("cannot be read or is empty") == true, "a refresh reads the token file again")
        }
    }

    @Test func theContainerEndpointIsAskedWithItsTokenAndRefreshedOnceBeforeExpiry() async throws {
        let server = try await TestHTTPServer()
        defer { Task { try await server.shutdown() } }
        let clock = FakeWallClock(Self.start)
        let expires = Self.start.seconds + 7200
        let provider = chain([
            "AWS_CONTAINER_CREDENTIALS_FULL_URI": "\(server.url)/creds/\(expires)", "AWS_CONTAINER_AUTHORIZATION_TOKEN": "token-1",
            "HOME": "/nonexistent",
        ], clock: clock)
        let first = try await provider.credentials()
        #expect(first.accessKeyID == "AKID1" && first.sessionToken == "token-1" && first.expiration?.seconds == expires)
        // Used as they are until 15 minutes before expiry.
        clock.advance(seconds: 3600)
        #expect(try await provider.credentials().accessKeyID == "AKID1")
        // In the last minute every caller waits for one refresh.
        clock.advance(seconds: 3600 - 30)
        let keys = try await withThrowingTaskGroup(of: String.self) { group in
            for _ in 0..<50 { group.addTask { try await provider.credentials().accessKeyID } }
            return try await group.reduce(into: Set<String>()) { $0.insert($1) }
        }
        #expect(keys == ["AKID2"])
        #expect(server.counters.credentialRequests.load(ordering: .relaxed) == 2, "single-flight: one refresh for 50 callers")
    }

    @Test func containerEndpointsAreRestrictedAndTheirTokenIsRequired() async throws {
        #expect(AWSCredentialChain.isAllowedContainerURL("https://creds.example.com/x"))
        #expect(AWSCredentialChain.isAllowedContainerURL("http://127.0.0.1:8080/x") && AWSCredentialChain.isAllowedContainerURL("http://[::1]/x"))
        #expect(AWSCredentialChain.isAllowedContainerURL("http://169.254.170.23/v1/credentials"))
        #expect(!AWSCredentialChain.isAllowedContainerURL("http://example.com/x") && !AWSCredentialChain.isAllowedContainerURL("file:///etc/passwd"))
        let refused = await #expect(throws: AWSCredentialsError.self) {
            _ = try await chain(["AWS_CONTAINER_CREDENTIALS_FULL_URI": "http://example.com/creds", "HOME": "/nonexistent"]).credentials()
        }
        #expect(refused?.message.contains("must be https") == true)
        let server = try await TestHTTPServer()
        defer { Task { try await server.shutdown() } }
        let unauthorized = await #expect(throws: AWSCredentialsError.self) {
            _ = try await chain(["AWS_CONTAINER_CREDENTIALS_FULL_URI": "\(server.url)/creds/1?secret=x", "HOME": "/nonexistent"]).credentials()
        }
        #expect(unauthorized?.message.contains("status 401") == true && unauthorized?.message.contains("secret=x") == false)
    }
}
