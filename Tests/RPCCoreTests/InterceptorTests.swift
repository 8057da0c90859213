import RPCCore
import StandardProtos
import Synchronization
import Testing

/// Records the order interceptors run in.
final class Trace: Sendable {
    private let entries = Mutex<[String]>([])
    func add(_ entry: String) { entries.withLock { $0.append(entry) } }
    var all: [String] { entries.withLock { $0 } }
}

enum CallerKey: ContextValueKey {
    typealias Value = String
}

/// Rejects calls without `x-caller`, otherwise puts the caller into the context.
struct CallerInterceptor: ServerInterceptor {
    let trace: Trace

    func intercept(
        _ stream: RPCServerStream, context: ServerContext,
        next: @Sendable (RPCServerStream, ServerContext) async throws -> Void
    ) async throws {
        trace.add("caller")
        guard let caller = context.requestMetadata.first("x-caller") else {
            throw RPCError(code: .unauthenticated, message: "no caller")
        }
        var context = context
        context.values[CallerKey.self] = caller
        try await next(stream, context)
    }
}

struct NamedInterceptor: ServerInterceptor {
    let name: String
    let trace: Trace

    func intercept(
        _ stream: RPCServerStream, context: ServerContext,
        next: @Sendable (RPCServerStream, ServerContext) async throws -> Void
    ) async throws {
        trace.add("\(name) before")
        try await next(stream, context)
        trace.add("\(name) after")
    }
}

/// Echoes the caller from the context into the response metadata, for unary and streaming methods.
struct CallerEchoService: Grpc_Testing_TestService.ServiceProtocol {
    func emptyCall(_ request: Grpc_Testing_Empty, context: ServerContext) async throws -> Grpc_Testing_Empty {
        try context.responseMetadata.addInitial(["x-seen-caller": .string(context.values[CallerKey.self] ?? "none")])
        return Grpc_Testing_Empty()
    }
    func unaryCall(_ request: Grpc_Testing_SimpleRequest, context: ServerContext) async throws -> Grpc_Testing_SimpleResponse { .init() }
    func cacheableUnaryCall(_ request: Grpc_Testing_SimpleRequest, context: ServerContext) async throws -> Grpc_Testing_SimpleResponse { .init() }
    func streamingOutputCall(_ request: Grpc_Testing_StreamingOutputCallRequest, responses: RPCWriter<Grpc_Testing_StreamingOutputCallResponse>, context: ServerContext) async throws {
        try context.responseMetadata.addInitial(["x-seen-caller": .string(context.values[CallerKey.self] ?? "none")])
        try await responses.write(.init())
    }
    func streamingInputCall(_ requests: RPCAsyncSequence<Grpc_Testing_StreamingInputCallRequest>, context: ServerContext) async throws -> Grpc_Testing_StreamingInputCallResponse { .init() }
    func fullDuplexCall(_ requests: RPCAsyncSequence<Grpc_Testing_StreamingOutputCallRequest>, responses: RPCWriter<Grpc_Testing_StreamingOutputCallResponse>, context: ServerContext) async throws {}
    func halfDuplexCall(_ requests: RPCAsyncSequence<Grpc_Testing_StreamingOutputCallRequest>, responses: RPCWriter<Grpc_Testing_StreamingOutputCallResponse>, context: ServerContext) async throws {}
    func unimplementedCall(_ request: Grpc_Testing_Empty, context: ServerContext) async throws -> Grpc_Testing_Empty { .init() }
}

/// Adds `x-caller` to every call and records the statuses it sees.
struct CallerClientInterceptor: ClientInterceptor {
    let trace: Trace

    func intercept<R: Sendable>(
        _ call: ClientCall,
        next: (ClientCall, @Sendable (RPCClientStream) async throws -> R) async throws -> R,
        body: @escaping @Sendable (RPCClientStream) async throws -> R
    ) async throws -> R {
        var call = call
        call.metadata.addString("ada", forKey: "x-caller")
        trace.add("client \(call.descriptor.method)")
        return try await next(call, body)
    }
}

@Suite("interceptors")
struct InterceptorTests {
    @Test func serverInterceptorsRunInOrderAndReachStreamingHandlers() async throws {
        let trace = Trace()
        let transport = InProcessTransport(services: [CallerEchoService()], interceptors: [
            ScopedServerInterceptor(NamedInterceptor(name: "outer", trace: trace)),
            ScopedServerInterceptor(CallerInterceptor(trace: trace)),
        ])
        let client = RPCClient(transport: transport, interceptors: [CallerClientInterceptor(trace: trace)])
        let unary: ClientResponse<Grpc_Testing_Empty> = try await client.unary(
            request: Grpc_Testing_Empty(), descriptor: Grpc_Testing_TestService.Method.emptyCall
        )
        #expect(unary.metadata.first("x-seen-caller") == "ada")
        #expect(trace.all == ["client EmptyCall", "outer before", "caller", "outer after"])

        let seen = try await Grpc_Testing_TestService.Client(client).streamingOutputCall(.init()) { response in
            for try await _ in response.messages {}
            return response.metadata.first("x-seen-caller")
        }
        #expect(seen == "ada")
    }

    @Test func interceptorRejectsWithAStatus() async throws {
        let trace = Trace()
        let transport = InProcessTransport(services: [CallerEchoService()], interceptors: [
            ScopedServerInterceptor(CallerInterceptor(trace: trace)),
        ])
        let error = await #expect(throws: RPCError.self) {
            try await Grpc_Testing_TestService.Client(RPCClient(transport: transport)).emptyCall(Grpc_Testing_Empty())
        }
        #expect(error?.code == .unauthenticated)
    }

    @Test func scopeLimitsWhereAnInterceptorRuns() async throws {
        let trace = Trace()
        let transport = InProcessTransport(services: [CallerEchoService()], interceptors: [
            ScopedServerInterceptor(CallerInterceptor(trace: trace), scope: .methods([Grpc_Testing_TestService.Method.unaryCall])),
            ScopedServerInterceptor(NamedInterceptor(name: "svc", trace: trace), scope: .services(["other.Service"])),
        ])
        _ = try await Grpc_Testing_TestService.Client(RPCClient(transport: transport)).emptyCall(Grpc_Testing_Empty())
        #expect(trace.all.isEmpty)
        await #expect(throws: RPCError.self) {
            _ = try await Grpc_Testing_TestService.Client(RPCClient(transport: transport)).unaryCall(.init())
        }
        #expect(trace.all == ["caller"])
    }
}
