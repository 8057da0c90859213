import RPCCore
import StandardProtos
import Synchronization
import Testing

/// grpc.testing.TestService, enough of it to drive every call kind through generated stubs.
struct EchoTestService: Grpc_Testing_TestService.ServiceProtocol {
    func emptyCall(_ request: Grpc_Testing_Empty, context: ServerContext) async throws -> Grpc_Testing_Empty {
        try context.responseMetadata.addInitial(["x-initial": .string(context.requestMetadata.first("x-echo") ?? "")])
        context.responseMetadata.addTrailing(["x-trailing": "bye"])
        return Grpc_Testing_Empty()
    }

    func unaryCall(_ request: Grpc_Testing_SimpleRequest, context: ServerContext) async throws -> Grpc_Testing_SimpleResponse {
        if let status = request.responseStatus, status.code != 0 {
            throw RPCError(code: StatusCode(rawValue: Int(status.code)), message: status.message, metadata: ["x-why": "asked"])
        }
        return .with { $0.payload = .with { $0.body = [UInt8](repeating: 0, count: Int(request.responseSize)) } }
    }

    func cacheableUnaryCall(_ request: Grpc_Testing_SimpleRequest, context: ServerContext) async throws -> Grpc_Testing_SimpleResponse {
        try await unaryCall(request, context: context)
    }

    func streamingOutputCall(
        _ request: Grpc_Testing_StreamingOutputCallRequest,
        responses: RPCWriter<Grpc_Testing_StreamingOutputCallResponse>,
        context: ServerContext
    ) async throws {
        for p in request.responseParameters {
            try await responses.write(.with { $0.payload = .with { $0.body = [UInt8](repeating: 1, count: Int(p.size)) } })
        }
    }

    func streamingInputCall(
        _ requests: RPCAsyncSequence<Grpc_Testing_StreamingInputCallRequest>,
        context: ServerContext
    ) async throws -> Grpc_Testing_StreamingInputCallResponse {
        var total: Int32 = 0
        for try await r in requests { total += Int32(r.payload?.body.count ?? 0) }
        return .with { $0.aggregatedPayloadSize = total }
    }

    func fullDuplexCall(
        _ requests: RPCAsyncSequence<Grpc_Testing_StreamingOutputCallRequest>,
        responses: RPCWriter<Grpc_Testing_StreamingOutputCallResponse>,
        context: ServerContext
    ) async throws {
        for try await r in requests {
            for p in r.responseParameters {
                if p.intervalUs > 0 { try await Task.sleep(for: .microseconds(Int(p.intervalUs))) }
                try await responses.write(.with { $0.payload = .with { $0.body = [UInt8](repeating: 2, count: Int(p.size)) } })
            }
        }
    }

    func halfDuplexCall(
        _ requests: RPCAsyncSequence<Grpc_Testing_StreamingOutputCallRequest>,
        responses: RPCWriter<Grpc_Testing_StreamingOutputCallResponse>,
        context: ServerContext
    ) async throws {
        throw RPCError(code: .unimplemented, message: "half duplex is not supported")
    }

    func unimplementedCall(_ request: Grpc_Testing_Empty, context: ServerContext) async throws -> Grpc_Testing_Empty {
        throw RPCError(code: .unimplemented, message: "not implemented")
    }
}

@Suite("generated stubs over the in-process transport")
struct InProcessRPCTests {
    let client = Grpc_Testing_TestService.Client(RPCClient(transport: InProcessTransport(services: [EchoTestService()])))

    @Test func unary() async throws {
        let response = try await client.unaryCall(.with { $0.responseSize = 314 })
        #expect(response.payload?.body.count == 314)
    }

    @Test func metadataBothWays() async throws {
        let response: ClientResponse<Grpc_Testing_Empty> = try await client.client.unary(
            request: Grpc_Testing_Empty(), descriptor: Grpc_Testing_TestService.Method.emptyCall, metadata: ["x-echo": "hi"]
        )
        #expect(response.metadata.first("x-initial") == "hi")
        #expect(response.trailingMetadata.first("x-trailing") == "bye")
    }

    @Test func errorStatusAndTrailers() async throws {
        let error = await #expect(throws: RPCError.self) {
            try await client.unaryCall(.with { $0.responseStatus = .with { $0.code = 2; $0.message = "test status message" } })
        }
        #expect(error?.code == .unknown)
        #expect(error?.message == "test status message")
        #expect(error?.metadata.first("x-why") == "asked")
    }

    @Test func clientStreaming() async throws {
        let sizes = [27182, 8, 1828, 45904]
        let response = try await client.streamingInputCall { writer in
            for n in sizes { try await writer.write(.with { $0.payload = .with { $0.body = [UInt8](repeating: 0, count: n) } }) }
        }
        #expect(response.aggregatedPayloadSize == 74922)
    }

    @Test func serverStreaming() async throws {
        let sizes = [31415, 9, 2653, 58979]
        let received = try await client.streamingOutputCall(.with {
            $0.responseParameters = sizes.map { n in .with { $0.size = Int32(n) } }
        }) { response in
            var out: [Int] = []
            for try await m in response.messages { out.append(m.payload?.body.count ?? -1) }
            return out
        }
        #expect(received == sizes)
    }

    @Test func bidirectionalPingPong() async throws {
        let sizes = [31415, 9, 2653, 58979]
        let received = try await client.fullDuplexCall { writer in
            for n in sizes { try await writer.write(.with { $0.responseParameters = [.with { $0.size = Int32(n) }] }) }
        } onResponse: { response in
            var out: [Int] = []
            for try await m in response.messages { out.append(m.payload?.body.count ?? -1) }
            return out
        }
        #expect(received == sizes)
    }

    @Test func deadlineExceeded() async throws {
        let error = await #expect(throws: RPCError.self) {
            try await client.fullDuplexCall(options: CallOptions(timeout: .milliseconds(5))) { writer in
                try await writer.write(.with { $0.responseParameters = [.with { $0.size = 1; $0.intervalUs = 2_000_000 }] })
            } onResponse: { response in
                for try await _ in response.messages {}
            }
        }
        #expect(error?.code == .deadlineExceeded)
    }

    @Test func unknownServiceIsUnimplemented() async throws {
        let other = Grpc_Testing_UnimplementedService.Client(client.client)
        let error = await #expect(throws: RPCError.self) { try await other.unimplementedCall(Grpc_Testing_Empty()) }
        #expect(error?.code == .unimplemented)
    }
}
