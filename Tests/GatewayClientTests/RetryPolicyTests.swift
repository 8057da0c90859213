// Only GatewayClient: the library product re-exports the transport (GRPCServer comes from RPCHTTP2 through it).
@testable import GatewayClient
import Synchronization
import Testing

/// A stand-in for the gateway's three services over real HTTP/2 on a free loopback port. Every method answers
/// an empty message (valid for any proto3 response) after the first `failures` calls, which end with `code`;
/// calls, tokens and deadlines are counted per method.
final class ScriptedGateway: RPCService {
    struct Script: Sendable {
        var failures: Int
        var code: StatusCode
        /// Refuse calls whose token is not this one (UNAUTHENTICATED), before the failures above.
        var acceptedToken: String?
    }

    struct Seen: Sendable {
        var calls = 0
        var refused = 0
        var authorizations: [[String]] = []
    }

    let script: Script
    let seen = Mutex<[String: Seen]>([:])

    init(failures: Int = 0, code: StatusCode = .unavailable, acceptedToken: String? = nil) {
        script = Script(failures: failures, code: code, acceptedToken: acceptedToken)
    }

    func calls(_ method: MethodDescriptor) -> Int { seen.withLock { $0[method.path]?.calls ?? 0 } }
    func authorizations(_ method: MethodDescriptor) -> [[String]] { seen.withLock { $0[method.path]?.authorizations ?? [] } }

    func registerMethods(with router: inout RPCRouter) {
        let methods = Gateway_User_V1_UserService.Method.all + Gateway_File_V1_FileService.Method.all
            + Gateway_Event_V1_EventService.Method.all
        for method in methods {
            router.register(method) { [self] stream, context in
                for try await _ in stream.inbound {}
                let authorization = context.requestMetadata[stringValues: "authorization"]
                let refused = script.acceptedToken.map { authorization != ["Bearer \($0)"] } ?? false
                let accepted = seen.withLock { seen in
                    seen[method.path, default: Seen()].calls += 1
                    seen[method.path]!.authorizations.append(authorization)
                    if refused { seen[method.path]!.refused += 1 }
                    return seen[method.path]!.calls - seen[method.path]!.refused
                }
                if refused { throw RPCError(code: .unauthenticated, message: "token refused") }
                if accepted <= script.failures { throw RPCError(code: script.code, message: "scripted failure \(accepted)") }
                // Unary and client-streaming methods answer one empty message; server streams end at once.
                if method.kind == .unary || method.kind == .clientStreaming { try await stream.outbound.write([]) }
            }
        }
    }
}

/// Starts `service` on a free port, connects a `GatewayConnection` to it, runs `body`, then stops both.
func withGateway(
    _ service: ScriptedGateway, token: (any TokenSource)? = nil, options: GatewayConnection.Options = .defaults,
    interceptors: [any ClientInterceptor] = [], _ body: @Sendable (GatewayConnection) async throws -> Void
) async throws {
    let server = GRPCServer(services: [service], configuration: .defaults { $0.port = 0 })
    try await withThrowingTaskGroup(of: Void.self) { group in
        group.addTask { try await server.run() }
        let port = try await server.listeningAddress.port!
        let connection = try GatewayConnection.connect(to: "127.0.0.1:\(port)", token: token, options: options, interceptors: interceptors)
        do {
            try await body(connection)
        } catch {
            await connection.close()
            group.cancelAll()
            throw error
        }
        await connection.close()
        group.cancelAll()
    }
}

/// One call of the gateway's API, named for the test report.
struct APICall: Sendable, CustomTestStringConvertible {
    let method: MethodDescriptor
    let run: @Sendable (GatewayConnection) async throws -> Void
    var testDescription: String { method.path }

    init<Response>(_ method: MethodDescriptor, _ run: @escaping @Sendable (GatewayConnection) async throws -> Response) {
        self.method = method
        self.run = { _ = try await run($0) }
    }

    /// The reads that change nothing: what the library may try again.
    static let reads: [APICall] = [
        APICall(Gateway_User_V1_UserService.Method.getUser) { try await $0.users.getUser(.with { $0.id = "u" }) },
        APICall(Gateway_User_V1_UserService.Method.getUserByEmail) { try await $0.users.getUserByEmail(.with { $0.email = "a@b.c" }) },
        APICall(Gateway_User_V1_UserService.Method.getCurrentUser) { try await $0.users.getCurrentUser(.init()) },
        APICall(Gateway_User_V1_UserService.Method.listUsers) { try await $0.users.listUsers(.init()) },
        APICall(Gateway_User_V1_UserService.Method.countUsers) { try await $0.users.countUsers(.init()) },
        APICall(Gateway_User_V1_UserService.Method.listSessions) { try await $0.users.listSessions(.init()) },
        APICall(Gateway_File_V1_FileService.Method.getFileInfo) { try await $0.files.getFileInfo(.with { $0.id = "f" }) },
        APICall(Gateway_File_V1_FileService.Method.listFiles) { try await $0.files.listFiles(.init()) },
        APICall(Gateway_File_V1_FileService.Method.getDownloadUrl) { try await $0.files.getDownloadUrl(.with { $0.id = "f" }) },
        APICall(Gateway_Event_V1_EventService.Method.listEvents) { try await $0.events.listEvents(.init()) },
    ]

    /// Everything else: calls that change something, and streams (whose body may already have seen messages).
    static let others: [APICall] = [
        APICall(Gateway_User_V1_UserService.Method.createUser) { try await $0.users.createUser(.with { $0.email = "a@b.c" }) },
        APICall(Gateway_User_V1_UserService.Method.updateUser) { try await $0.users.updateUser(.init()) },
        APICall(Gateway_User_V1_UserService.Method.deleteUser) { try await $0.users.deleteUser(.with { $0.id = "u" }) },
        APICall(Gateway_User_V1_UserService.Method.createSession) { try await $0.users.createSession(.init()) },
        APICall(Gateway_User_V1_UserService.Method.revokeSession) { try await $0.users.revokeSession(.with { $0.id = "s" }) },
        APICall(Gateway_File_V1_FileService.Method.uploadFile) { connection in
            try await connection.files.uploadFile { try await $0.write(.with { $0.data = .chunk([1, 2, 3]) }) }
        },
        APICall(Gateway_File_V1_FileService.Method.deleteFile) { try await $0.files.deleteFile(.with { $0.id = "f" }) },
        APICall(Gateway_File_V1_FileService.Method.downloadFile) { connection in
            try await connection.files.downloadFile(.with { $0.id = "f" }) { response in
                for try await _ in response.messages {}
            }
        },
        APICall(Gateway_Event_V1_EventService.Method.publishEvent) { try await $0.events.publishEvent(.with { $0.event = .with { $0.type = "t" } }) },
        APICall(Gateway_Event_V1_EventService.Method.publishEvents) { try await $0.events.publishEvents(.with { $0.events = [.with { $0.type = "t" }] }) },
        APICall(Gateway_Event_V1_EventService.Method.subscribe) { connection in
            try await connection.events.subscribe(.init()) { response in
                for try await _ in response.messages {}
            }
        },
    ]
}

/// A token source that hands out `t0`, then `t1` after the first forced refresh, and so on, recording whether
/// each request forced a refresh.
final class CountingTokens: TokenSource {
    let requests = Mutex<[Bool]>([])

    func token(forceRefresh: Bool) async throws -> String {
        requests.withLock { requests in
            requests.append(forceRefresh)
            return "t\(requests.filter { $0 }.count)"
        }
    }
}

/// Records each attempt's deadline as the transport is asked to send it (runs inside the connection's own
/// interceptor, so it sees every retry).
final class AttemptTimeouts: ClientInterceptor {
    let timeouts = Mutex<[Duration?]>([])

    func intercept<R: Sendable>(
        _ call: ClientCall,
        next: (ClientCall, @Sendable (RPCClientStream) async throws -> R) async throws -> R,
        body: @escaping @Sendable (RPCClientStream) async throws -> R
    ) async throws -> R {
        timeouts.withLock { $0.append(call.options.timeout) }
        return try await next(call, body)
    }
}

@Suite("GatewayClient retries: idempotent reads only")
struct RetryPolicyTests {
    @Test("every idempotent read is tried again while the server is UNAVAILABLE", arguments: APICall.reads)
    func readsAreRetriedOnUnavailable(_ read: APICall) async throws {
        let gateway = ScriptedGateway(failures: 2, code: .unavailable)
        try await withGateway(gateway) { connection in
            try await read.run(connection)
        }
        #expect(gateway.calls(read.method) == 3)
    }

    @Test("no write and no stream is ever tried again", arguments: APICall.others)
    func othersAreNeverRetried(_ call: APICall) async throws {
        let gateway = ScriptedGateway(failures: 1, code: .unavailable)
        try await withGateway(gateway) { connection in
            let error = await #expect(throws: RPCError.self) { try await call.run(connection) }
            #expect(error?.code == .unavailable)
        }
        #expect(gateway.calls(call.method) == 1)
    }

    @Test("a read gives up after readAttempts and reports UNAVAILABLE", arguments: [1, 3, 5])
    func readsGiveUpAfterTheirAttempts(_ attempts: Int) async throws {
        let gateway = ScriptedGateway(failures: .max, code: .unavailable)
        var options = GatewayConnection.Options()
        options.readAttempts = attempts
        try await withGateway(gateway, options: options) { connection in
            let error = await #expect(throws: RPCError.self) { try await connection.users.getUser(.with { $0.id = "u" }) }
            #expect(error?.code == .unavailable)
        }
        #expect(gateway.calls(Gateway_User_V1_UserService.Method.getUser) == attempts)
    }

    @Test(
        "a read that fails with anything but UNAVAILABLE is not tried again",
        arguments: [StatusCode.internal, .unknown, .deadlineExceeded, .resourceExhausted, .aborted, .notFound, .permissionDenied]
    )
    func otherCodesAreNotRetried(_ code: StatusCode) async throws {
        let gateway = ScriptedGateway(failures: 1, code: code)
        try await withGateway(gateway) { connection in
            let error = await #expect(throws: RPCError.self) { try await connection.events.listEvents(.init()) }
            #expect(error?.code == code)
        }
        #expect(gateway.calls(Gateway_Event_V1_EventService.Method.listEvents) == 1)
    }

    /// The server refused the token before doing anything, so even a write is safe to send again, once, with
    /// a refreshed token; the old token is replaced, not sent next to the new one.
    @Test("a refused token is refreshed once and the call sent again", arguments: [APICall.reads[0], APICall.others[0]])
    func refusedTokenIsRefreshedOnce(_ call: APICall) async throws {
        let gateway = ScriptedGateway(acceptedToken: "t1")
        let tokens = CountingTokens()
        try await withGateway(gateway, token: tokens) { connection in
            try await call.run(connection)
        }
        #expect(tokens.requests.withLock { $0 } == [false, true])
        #expect(gateway.authorizations(call.method) == [["Bearer t0"], ["Bearer t1"]])
    }

    @Test("a token still refused after one refresh ends the call with UNAUTHENTICATED")
    func stillRefusedTokenIsNotRefreshedAgain() async throws {
        let gateway = ScriptedGateway(acceptedToken: "never")
        let tokens = CountingTokens()
        try await withGateway(gateway, token: tokens) { connection in
            let error = await #expect(throws: RPCError.self) { try await connection.users.getCurrentUser(.init()) }
            #expect(error?.code == .unauthenticated)
        }
        #expect(tokens.requests.withLock { $0 } == [false, true])
        #expect(gateway.calls(Gateway_User_V1_UserService.Method.getCurrentUser) == 2)
    }

    /// A refresh is not an UNAVAILABLE attempt: a read refused once for its token still gets all its
    /// `readAttempts` against an unavailable server, and only the attempt right after the refusal asks for a
    /// fresh token. (Every attempt after a refresh used to force another one, which a one-time-refresh source
    /// answers with a token the server refuses, and the refresh used up one of the attempts.)
    @Test("a token refresh does not use up a read's attempts")
    func refreshDoesNotUseUpReadAttempts() async throws {
        let gateway = ScriptedGateway(failures: 2, code: .unavailable, acceptedToken: "t1")
        let tokens = CountingTokens()
        try await withGateway(gateway, token: tokens) { connection in
            _ = try await connection.users.getUser(.with { $0.id = "u" })
        }
        #expect(tokens.requests.withLock { $0 } == [false, true, false, false])
        #expect(gateway.calls(Gateway_User_V1_UserService.Method.getUser) == 4)
    }

    /// The deadline is the whole call's, retries included (gRPC's retry design, grpc/proposal A6): each
    /// attempt is sent with what is left of it, not with a fresh one. (Each retry used to get the full timeout,
    /// so three attempts could take three times as long as asked.)
    @Test("retries share the call's deadline")
    func retriesShareTheDeadline() async throws {
        let gateway = ScriptedGateway(failures: 2, code: .unavailable)
        let attempts = AttemptTimeouts()
        var options = GatewayConnection.Options()
        options.defaultTimeout = .seconds(60)
        try await withGateway(gateway, options: options, interceptors: [attempts]) { connection in
            _ = try await connection.users.listUsers(.init())
        }
        let timeouts = attempts.timeouts.withLock { $0 }.compactMap { $0 }
        #expect(timeouts.count == 3)
        #expect(timeouts.allSatisfy { $0 <= .seconds(60) })
        // Each retry waited at least the smallest backoff first, and that came off its deadline.
        #expect(zip(timeouts, timeouts.dropFirst()).allSatisfy { $1 <= $0 - CallDefaults.minimumBackoff })
    }

    @Test("no deadline when neither the call nor the options set one")
    func noDeadline() async throws {
        let attempts = AttemptTimeouts()
        var options = GatewayConnection.Options()
        options.defaultTimeout = nil
        try await withGateway(ScriptedGateway(failures: 1), options: options, interceptors: [attempts]) { connection in
            _ = try await connection.files.listFiles(.init())
        }
        #expect(attempts.timeouts.withLock { $0 }.map { $0 == nil } == [true, true])
    }

    /// The wait before a retry grows but stays bounded however many attempts are allowed. (It used to double
    /// without a cap, and `100 << attempt` overflowed into a trapping range after 57 attempts.)
    @Test("backoff is bounded", arguments: [1, 2, 5, 10, 57, 64, 1000])
    func backoffIsBounded(_ failures: Int) {
        for _ in 0..<20 {
            let wait = CallDefaults.backoff(afterFailures: failures)
            #expect(wait >= CallDefaults.minimumBackoff && wait <= CallDefaults.maximumBackoff)
        }
    }
}
