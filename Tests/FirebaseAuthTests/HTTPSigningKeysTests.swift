@testable import FirebaseAuth
import Foundation
import GatewayApplication
import OpenSSLCrypto
import Synchronization
import Testing

/// Serves key documents from memory and counts requests.
final class KeyServer: HTTPClient {
    struct Reply: Sendable {
        var status = 200
        var cacheControl: String? = "public, max-age=3600, must-revalidate, no-transform"
        var keys: [String: [UInt8]] = [:]
        var delay: Duration = .zero
    }

    let reply: Mutex<Reply>
    let requests = Atomic<Int>(0)

    init(_ reply: Reply) {
        self.reply = Mutex(reply)
    }

    func send(_ request: HTTPRequest) async throws -> HTTPResponse {
        requests.add(1, ordering: .relaxed)
        let r = reply.withLock { $0 }
        if r.delay > .zero { try await Task.sleep(for: r.delay) }
        guard r.status != 0 else { throw HTTPClientError(url: request.url, reason: "connection refused") }
        let body = "{" + r.keys.map { kid, pem in
            "\"\(kid)\":\"" + String(decoding: pem, as: UTF8.self).replacingOccurrences(of: "\n", with: "\\n") + "\""
        }.joined(separator: ",") + "}"
        var headers: [(name: String, value: String)] = [("content-type", "application/json; charset=UTF-8")]
        if let c = r.cacheControl { headers.append(("cache-control", c)) }
        return HTTPResponse(status: r.status, headers: headers, body: Array(body.utf8))
    }
}

@Suite("HTTP signing keys: caching and refresh")
struct HTTPSigningKeysTests {
    static let certificate1 = try! TestSigner.shared.key.selfSignedCertificatePEM(commonName: "k1", validDays: 17)
    static let certificate2 = try! TestSigner.other.key.selfSignedCertificatePEM(commonName: "k2", validDays: 17)

    func source(_ server: KeyServer, clock: FakeWallClock) -> HTTPSigningKeys {
        HTTPSigningKeys(configuration: .init(url: "http://keys.test/x509"), http: server, clock: clock)
    }

    @Test func cachedForMaxAge() async throws {
        let server = KeyServer(.init(keys: ["k1": Self.certificate1]))
        let clock = FakeWallClock(UnixTime(seconds: now))
        let keys = source(server, clock: clock)
        for _ in 0..<100 { _ = try await keys.key(id: "k1") }
        #expect(server.requests.load(ordering: .relaxed) == 1)
        clock.advance(seconds: 3601)
        _ = try await keys.key(id: "k1")
        #expect(server.requests.load(ordering: .relaxed) == 2)
    }

    @Test func missingMaxAgeCountsAsTheMinimum() async throws {
        let server = KeyServer(.init(cacheControl: nil, keys: ["k1": Self.certificate1]))
        let clock = FakeWallClock(UnixTime(seconds: now))
        let keys = source(server, clock: clock)
        _ = try await keys.key(id: "k1")
        _ = try await keys.key(id: "k1")
        #expect(server.requests.load(ordering: .relaxed) == 1)
        clock.advance(seconds: 61)
        _ = try await keys.key(id: "k1")
        #expect(server.requests.load(ordering: .relaxed) == 2)
    }

    @Test func concurrentCallersShareOneRequest() async throws {
        let server = KeyServer(.init(keys: ["k1": Self.certificate1], delay: .milliseconds(100)))
        let keys = source(server, clock: FakeWallClock(UnixTime(seconds: now)))
        try await withThrowingTaskGroup(of: Void.self) { group in
            for _ in 0..<50 { group.addTask { _ = try await keys.key(id: "k1") } }
            try await group.waitForAll()
        }
        #expect(server.requests.load(ordering: .relaxed) == 1)
    }

    @Test func unknownKidRefreshesOnceThenIsRateLimited() async throws {
        let server = KeyServer(.init(keys: ["k1": Self.certificate1]))
        let clock = FakeWallClock(UnixTime(seconds: now))
        let keys = source(server, clock: clock)
        _ = try await keys.key(id: "k1")
        // Rotation: a new key appears before the cache expires.
        server.reply.withLock { $0.keys = ["k1": Self.certificate1, "k2": Self.certificate2] }
        _ = try await keys.key(id: "k2")
        #expect(server.requests.load(ordering: .relaxed) == 2)
        // A kid that stays unknown does not hammer the server: at most one refresh per 30 s.
        for _ in 0..<20 {
            await #expect(throws: TokenVerificationError.self) { _ = try await keys.key(id: "nope") }
        }
        #expect(server.requests.load(ordering: .relaxed) == 2)
        clock.advance(seconds: 31)
        for _ in 0..<20 {
            await #expect(throws: TokenVerificationError.self) { _ = try await keys.key(id: "nope") }
        }
        #expect(server.requests.load(ordering: .relaxed) == 3)
    }

    /// Key rotation under load: requests with the new kid that arrive while its refresh is in flight wait for
    /// that refresh and are judged on its result; the rate limit refuses new refreshes, never the answer of a
    /// running one. (They used to be refused as unknown: 4 of 20 concurrent requests, seen from outside.)
    @Test func requestsDuringAnUnknownKidRefreshWaitForIt() async throws {
        let server = KeyServer(.init(keys: ["k1": Self.certificate1]))
        let keys = source(server, clock: FakeWallClock(UnixTime(seconds: now)))
        _ = try await keys.key(id: "k1")
        server.reply.withLock { $0.keys = ["k1": Self.certificate1, "k2": Self.certificate2]; $0.delay = .milliseconds(300) }
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { _ = try await keys.key(id: "k2") }
            while server.requests.load(ordering: .relaxed) < 2 { try await Task.sleep(for: .milliseconds(1)) }
            // The refresh is in flight now.
            for _ in 0..<19 { group.addTask { _ = try await keys.key(id: "k2") } }
            try await group.waitForAll()
        }
        #expect(server.requests.load(ordering: .relaxed) == 2)
        // A kid the finished refresh did not bring stays refused, without another request.
        await #expect(throws: TokenVerificationError.self) { _ = try await keys.key(id: "k3") }
        #expect(server.requests.load(ordering: .relaxed) == 2)
    }

    @Test func outageKeepsTheLastGoodKeysWithinTheGrace() async throws {
        let server = KeyServer(.init(keys: ["k1": Self.certificate1]))
        let clock = FakeWallClock(UnixTime(seconds: now))
        let keys = source(server, clock: clock)
        _ = try await keys.key(id: "k1")
        server.reply.withLock { $0.status = 500 }
        clock.advance(seconds: 3601)
        _ = try await keys.key(id: "k1")  // stale, but within the grace period
        clock.advance(seconds: 86_400)
        let error = await #expect(throws: TokenVerificationError.self) { _ = try await keys.key(id: "k1") }
        #expect(error?.reason == .keysUnavailable)
    }

    @Test func noKeysAtAllIsUnavailable() async throws {
        let server = KeyServer(.init(status: 0))
        let keys = source(server, clock: FakeWallClock(UnixTime(seconds: now)))
        let error = await #expect(throws: TokenVerificationError.self) { _ = try await keys.key(id: "k1") }
        #expect(error?.reason == .keysUnavailable)
    }

    @Test(arguments: [
        ("public, max-age=18821, must-revalidate, no-transform", Int64(18821)), ("max-age=60", 60), ("MAX-AGE = 5", 5),
        ("no-cache", nil), ("max-age=abc", nil),
    ] as [(String, Int64?)])
    func parsesMaxAge(header: String, expected: Int64?) {
        #expect(HTTPSigningKeys.maxAge(header) == expected)
    }
}

/// A temporary directory removed when the value goes away.
final class FileManagerTemporaryDirectory: Sendable {
    let url: URL

    init() {
        url = FileManager.default.temporaryDirectory.appendingPathComponent("gateway-test-\(UInt64.random(in: 0 ... .max))")
    }

    deinit {
        try? FileManager.default.removeItem(at: url)
    }
}
