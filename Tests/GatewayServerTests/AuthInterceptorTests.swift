import FirebaseAuth
import Foundation
import GatewayApplication
import GatewayServer
import Logging
import RPCCore
import StandardProtos
import Testing

/// One local authority for the suite (RSA key generation takes a while).
let authority: LocalAuthority = {
    let directory = FileManager.default.temporaryDirectory.appendingPathComponent("auth-interceptor-\(UUID().uuidString)")
    return try! LocalAuthority.loadOrCreate(in: directory)
}()

let clock = FakeWallClock(UnixTime(seconds: 1_700_000_000))

/// Puts who the handler saw into the response metadata, for a unary and a streaming method.
struct PrincipalEchoService: Grpc_Testing_TestService.ServiceProtocol {
    static func seen(_ context: ServerContext) -> Metadata {
        ["x-seen-uid": .string(context.principal?.uid ?? "none")]
    }

    func emptyCall(_ request: Grpc_Testing_Empty, context: ServerContext) async throws -> Grpc_Testing_Empty {
        try context.responseMetadata.addInitial(Self.seen(context))
        return Grpc_Testing_Empty()
    }
    func unaryCall(_ request: Grpc_Testing_SimpleRequest, context: ServerContext) async throws -> Grpc_Testing_SimpleResponse {
        try context.responseMetadata.addInitial(Self.seen(context))
        return .init()
    }
    func cacheableUnaryCall(_ request: Grpc_Testing_SimpleRequest, context: ServerContext) async throws -> Grpc_Testing_SimpleResponse {
        try context.responseMetadata.addInitial(Self.seen(context))
        return .init()
    }
    func streamingOutputCall(_ request: Grpc_Testing_StreamingOutputCallRequest, responses: RPCWriter<Grpc_Testing_StreamingOutputCallResponse>, context: ServerContext) async throws {
        try context.responseMetadata.addInitial(Self.seen(context))
        try await responses.write(.init())
    }
    func streamingInputCall(_ requests: RPCAsyncSequence<Grpc_Testing_StreamingInputCallRequest>, context: ServerContext) async throws -> Grpc_Testing_StreamingInputCallResponse { .init() }
    func fullDuplexCall(_ requests: RPCAsyncSequence<Grpc_Testing_StreamingOutputCallRequest>, responses: RPCWriter<Grpc_Testing_StreamingOutputCallResponse>, context: ServerContext) async throws {}
    func halfDuplexCall(_ requests: RPCAsyncSequence<Grpc_Testing_StreamingOutputCallRequest>, responses: RPCWriter<Grpc_Testing_StreamingOutputCallResponse>, context: ServerContext) async throws {}
    func unimplementedCall(_ request: Grpc_Testing_Empty, context: ServerContext) async throws -> Grpc_Testing_Empty { .init() }
}

/// Key downloads that always fail.
struct UnreachableHTTP: HTTPClient {
    func send(_ request: HTTPRequest) async throws -> HTTPResponse {
        throw HTTPClientError(url: request.url, reason: "connection refused")
    }
}

/// TestService protected for the test: EmptyCall public, UnaryCall admin-only, CacheableUnaryCall needs a
/// verified email, the rest a token.
let testPolicy: AccessPolicy = {
    var policy = AccessPolicy()
    policy.set(.init(.public), service: "grpc.testing.TestService", method: "EmptyCall")
    policy.set(.init(.admin), service: "grpc.testing.TestService", method: "UnaryCall")
    policy.set(.init(.authenticated, requiresVerifiedEmail: true), service: "grpc.testing.TestService", method: "CacheableUnaryCall")
    return policy
}()

/// Calls through the interceptor; returns the uid the handler saw.
struct Caller {
    var verifier: (any TokenVerifier)?
    var metadata: Metadata = [:]

    init(verifier: (any TokenVerifier)? = nil, _ metadata: Metadata = [:]) {
        self.verifier = verifier
        self.metadata = metadata
    }

    init(bearer token: String) {
        self.init(["authorization": .string("Bearer \(token)")])
    }

    private func client() throws -> RPCClient {
        let keys = try authority.signingKeys()
        let verifier = verifier ?? FirebaseTokenVerifier(
            configuration: .init(projectID: LocalAuthority.projectID), idTokenKeys: keys, sessionCookieKeys: keys, clock: clock
        )
        return RPCClient(transport: InProcessTransport(services: [PrincipalEchoService()], interceptors: [
            ScopedServerInterceptor(AuthInterceptor(verifier: verifier, policy: testPolicy)),
        ]))
    }

    func unary(_ method: MethodDescriptor) async throws -> String? {
        let response: ClientResponse<Grpc_Testing_Empty> = try await client().unary(
            request: Grpc_Testing_Empty(), descriptor: method, metadata: metadata
        )
        return response.metadata.first("x-seen-uid")
    }

    func streaming() async throws -> String? {
        try await Grpc_Testing_TestService.Client(client()).streamingOutputCall(.init(), metadata: metadata) { response in
            for try await _ in response.messages {}
            return response.metadata.first("x-seen-uid")
        }
    }
}

typealias Method = Grpc_Testing_TestService.Method

func token(uid: String = "alice", email: String? = nil, admin: Bool = false, kind: TokenKind = .idToken) -> String {
    try! authority.mint(uid: uid, email: email, admin: admin, now: clock.now(), kind: kind)
}

/// The status an RPC ended with, or nil for OK.
func failure(_ call: () async throws -> Void) async -> RPCError? {
    do {
        try await call()
        return nil
    } catch let error as RPCError {
        return error
    } catch {
        Issue.record("unexpected \(error)")
        return nil
    }
}

@Suite("auth interceptor")
struct AuthInterceptorTests {
    @Test func principalReachesUnaryAndStreamingHandlers() async throws {
        let caller = Caller(bearer: token(uid: "alice", email: "a@example.com"))
        #expect(try await caller.unary(Method.cacheableUnaryCall) == "alice")
        #expect(try await caller.streaming() == "alice")
    }

    @Test(arguments: [
        ("no metadata", [], "missing \"authorization\" metadata; expected \"Bearer <Firebase ID token>\""),
        ("wrong scheme", [("authorization", "Basic YWxhZGRpbjpvcGVuc2VzYW1l")], "\"authorization\" metadata must be \"Bearer <Firebase ID token>\""),
        ("scheme only", [("authorization", "Bearer")], "\"authorization\" metadata must be \"Bearer <Firebase ID token>\""),
        ("a longer scheme", [("authorization", "Bearers a.b.c")], "\"authorization\" metadata must be \"Bearer <Firebase ID token>\""),
        ("bearer without token", [("authorization", "Bearer ")], "\"authorization\" metadata must be \"Bearer <Firebase ID token>\""),
        // What the transport passes on for a value with a byte outside printable ASCII.
        ("not printable ASCII", [("authorization", "")], "\"authorization\" metadata must be \"Bearer <Firebase ID token>\""),
        ("space inside the token", [("authorization", "Bearer a.b .c")], "\"authorization\" metadata must be \"Bearer <Firebase ID token>\""),
        ("not a JWT", [("authorization", "Bearer abc")], "ID token is malformed: expected three base64url segments"),
        ("two authorization entries", [("authorization", "Bearer a.b.c"), ("authorization", "Bearer d.e.f")], "more than one \"authorization\" metadata entry"),
    ] as [(String, [(String, String)], String)])
    func missingOrMalformedCredentialsAreUnauthenticated(name: String, entries: [(String, String)], message: String) async {
        var metadata = Metadata()
        for (key, value) in entries { metadata.addString(value, forKey: key) }
        let error = await failure { _ = try await Caller(metadata).streaming() }
        #expect(error?.code == .unauthenticated, "\(name)")
        #expect(error?.message == message, "\(name)")
    }

    @Test func schemeIsCaseInsensitive() async throws {
        #expect(try await Caller(["authorization": .string("bEaReR  \(token())")]).streaming() == "alice")
    }

    @Test func sessionCookieFromCookieMetadata() async throws {
        let cookie = token(uid: "bob", kind: .sessionCookie)
        #expect(try await Caller(["cookie": .string("theme=dark; session=\(cookie)")]).streaming() == "bob")
        // An ID token is not a session cookie (its issuer differs).
        let error = await failure { _ = try await Caller(["cookie": .string("session=\(token())")]).streaming() }
        #expect(error?.code == .unauthenticated)
    }

    @Test func publicMethodsNeedNoToken() async throws {
        #expect(try await Caller().unary(Method.emptyCall) == "none")
    }

    @Test func adminOnlyMethodRefusesOthers() async throws {
        let error = await failure { _ = try await Caller(bearer: token()).unary(Method.unaryCall) }
        #expect(error?.code == .permissionDenied)
        #expect(error?.message == "UnaryCall requires the \"admin\" claim")
        #expect(try await Caller(bearer: token(admin: true)).unary(Method.unaryCall) == "alice")
    }

    @Test func verifiedEmailRequirement() async throws {
        let error = await failure { _ = try await Caller(bearer: token()).unary(Method.cacheableUnaryCall) }
        #expect(error?.code == .permissionDenied)
        #expect(try await Caller(bearer: token(email: "a@example.com")).unary(Method.cacheableUnaryCall) == "alice")
    }

    @Test func unavailableKeysAreUnavailableNotUnauthenticated() async {
        let keys = HTTPSigningKeys(configuration: .init(url: "http://127.0.0.1:9/keys"), http: UnreachableHTTP(), clock: clock)
        let verifier = FirebaseTokenVerifier(
            configuration: .init(projectID: LocalAuthority.projectID), idTokenKeys: keys, sessionCookieKeys: keys, clock: clock
        )
        let error = await failure { _ = try await Caller(verifier: verifier, ["authorization": .string("Bearer \(token())")]).streaming() }
        #expect(error?.code == .unavailable)
    }

    @Test func tenantOutsideTheAllowListIsPermissionDenied() async {
        var configuration = FirebaseTokenVerifier.Configuration(projectID: LocalAuthority.projectID)
        configuration.allowedTenants = ["tenant-a"]
        let keys = try! authority.signingKeys()
        let verifier = FirebaseTokenVerifier(configuration: configuration, idTokenKeys: keys, sessionCookieKeys: keys, clock: clock)
        let error = await failure { _ = try await Caller(verifier: verifier, ["authorization": .string("Bearer \(token())")]).streaming() }
        #expect(error?.code == .permissionDenied)
    }

    @Test func gatewayPolicyTable() {
        func access(_ service: String, _ method: String) -> AccessPolicy.Access {
            AccessPolicy.gateway.rule(for: MethodDescriptor(service: .init(fullyQualifiedName: service), method: method, kind: .unary)).access
        }
        #expect(access("grpc.health.v1.Health", "Check") == .public)
        #expect(access("grpc.reflection.v1.ServerReflection", "ServerReflectionInfo") == .public)
        #expect(access("grpc.testing.TestService", "EmptyCall") == .public)
        #expect(access("gateway.user.v1.UserService", "GetUser") == .authenticated)
        #expect(access("gateway.user.v1.UserService", "ListUsers") == .admin)
        #expect(access("gateway.user.v1.UserService", "CountUsers") == .admin)
        #expect(access("gateway.file.v1.FileService", "UploadFile") == .authenticated)
        #expect(access("some.new.Service", "Anything") == .authenticated)
    }
}

@Suite("services admitted by client certificate")
struct CertificateServiceTests {
    let policy: AccessPolicy = {
        var policy = AccessPolicy.gateway
        policy.certificateServices = ["spiffe://example.org/payments", "DNS:billing.internal", "CN=audit,O=Example"]
        return policy
    }()

    @Test func aSubjectAlternativeNameOrTheSubjectNamesTheService() {
        let payments = ClientCertificate(subject: "CN=payments", subjectAlternativeNames: ["DNS:x", "URI:spiffe://example.org/payments"])
        #expect(policy.service(for: payments) == "spiffe://example.org/payments")
        let billing = ClientCertificate(subject: "CN=billing", subjectAlternativeNames: ["DNS:billing.internal"])
        #expect(policy.service(for: billing) == "DNS:billing.internal")
        let audit = ClientCertificate(subject: "CN=audit,O=Example", subjectAlternativeNames: [])
        #expect(policy.service(for: audit) == "CN=audit,O=Example")
    }

    /// Matching is exact and typed: a SAN of another type, or one whose text looks like a subject, names
    /// nothing (review finding: `URI:DNS:billing.internal` used to match `DNS:billing.internal`).
    @Test func otherCertificatesAndAnEmptyListNameNone() {
        for other in [
            ClientCertificate(subject: "CN=payments,O=Other", subjectAlternativeNames: ["URI:spiffe://example.org/other", "DNS:payments"]),
            ClientCertificate(subject: "CN=x", subjectAlternativeNames: ["URI:DNS:billing.internal"]),
            ClientCertificate(subject: "CN=x", subjectAlternativeNames: ["URI:CN=audit,O=Example", "DNS:CN=audit,O=Example"]),
            ClientCertificate(subject: "CN=x", subjectAlternativeNames: ["DNS:spiffe://example.org/payments"]),
        ] {
            #expect(policy.service(for: other) == nil, "\(other)")
        }
        var untyped = AccessPolicy.gateway
        untyped.certificateServices = ["billing.internal"]
        #expect(untyped.service(for: ClientCertificate(subject: "CN=x", subjectAlternativeNames: ["email:billing.internal"])) == nil)
        #expect(untyped.service(for: ClientCertificate(subject: "CN=x", subjectAlternativeNames: ["DNS:billing.internal"])) == "billing.internal")
        let payments = ClientCertificate(subject: "CN=payments", subjectAlternativeNames: ["URI:spiffe://example.org/payments"])
        #expect(AccessPolicy.gateway.service(for: payments) == nil)
    }
}
