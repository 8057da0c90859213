import InteropTesting
import Logging
import RPCCore
import RPCHTTP2
import StandardProtos
import Synchronization
import Testing

/// Our client against our server over loopback TCP.
@Suite("client and server over TCP")
struct ClientServerTests {
    /// Starts a server on a free port, runs `body` with a client for it, then stops both.
    func withServer(
        _ services: [any RPCService],
        _ body: @Sendable (RPCClient) async throws -> Void
    ) async throws {
        let server = GRPCServer(services: services, configuration: .defaults { $0.port = 0 }, logger: Logger(label: "test"))
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { try await server.run() }
            let address = try await server.listeningAddress
            let transport = HTTP2ClientTransport(host: "127.0.0.1", port: address.port!)
            do {
                try await body(RPCClient(transport: transport))
            } catch {
                await transport.close()
                group.cancelAll()
                throw error
            }
            await transport.close()
            group.cancelAll()
        }
    }

    @Test func statusDetailsPassThrough() async throws {
        try await withServer([DetailsService()]) { client in
            let error = await #expect(throws: RPCError.self) {
                try await Grpc_Testing_TestService.Client(client).emptyCall(Grpc_Testing_Empty())
            }
            #expect(error?.code == .failedPrecondition)
            #expect(error?.metadata[binaryValues: "grpc-status-details-bin"] == [[8, 9, 10, 0xFF]])
        }
    }

    /// A server that ends the call while the client is still sending: the client reports the server's status,
    /// not the failed write (which used to win the race about half the time).
    @Test func earlyStatusWinsOverTheFailedWrite() async throws {
        try await withServer([DetailsService()]) { client in
            for _ in 0..<30 {
                let error = await #expect(throws: RPCError.self) {
                    _ = try await Grpc_Testing_TestService.Client(client).streamingInputCall { writer in
                        while true { try await writer.write(.with { $0.payload = .with { $0.body = [1, 2, 3] } }) }
                    }
                }
                #expect(error?.code == .invalidArgument)
                #expect(error?.message == "rejected before reading")
            }
        }
    }

    @Test func manyConcurrentCallsShareOneConnection() async throws {
        try await withServer([InteropTestService()]) { client in
            let test = Grpc_Testing_TestService.Client(client)
            try await withThrowingTaskGroup(of: Int.self) { group in
                for i in 0..<300 {
                    group.addTask { try await test.unaryCall(.with { $0.responseSize = Int32(i) }).payload?.body.count ?? -1 }
                }
                var sizes: [Int] = []
                for try await size in group { sizes.append(size) }
                #expect(sizes.sorted() == Array(0..<300))
            }
        }
    }

    @Test func clientDeadlineEndsTheCall() async throws {
        try await withServer([InteropTestService()]) { client in
            let started = ContinuousClock.now
            let error = await #expect(throws: RPCError.self) {
                try await Grpc_Testing_TestService.Client(client).fullDuplexCall(options: CallOptions(timeout: .milliseconds(100))) { writer in
                    try await writer.write(.with { $0.responseParameters = [.with { $0.size = 1; $0.intervalUs = 5_000_000 }] })
                } onResponse: { response in
                    for try await _ in response.messages {}
                }
            }
            #expect(error?.code == .deadlineExceeded)
            #expect(ContinuousClock.now - started < .seconds(2))
        }
    }

    @Test func clientCancellationReachesTheHandler() async throws {
        let cancelled = Flag()
        try await withServer([WaitingService(cancelled: cancelled)]) { client in
            let call = Task {
                try await client.bidirectionalStreaming(
                    descriptor: MethodDescriptor(service: .init(fullyQualifiedName: "test.Waiting"), method: "Wait", kind: .bidirectionalStreaming),
                    requests: { (_: RPCWriter<Grpc_Testing_Empty>) in try await Task.sleep(for: .seconds(30)) },
                    onResponse: { (response: StreamingClientResponse<Grpc_Testing_Empty>) in
                        for try await _ in response.messages {}
                    }
                )
            }
            try await Task.sleep(for: .milliseconds(200))
            call.cancel()
            let deadline = ContinuousClock.now + .seconds(5)
            while !cancelled.isSet && ContinuousClock.now < deadline { try await Task.sleep(for: .milliseconds(10)) }
            #expect(cancelled.isSet)
        }
    }

    @Test func compressedCallsBothWays() async throws {
        try await withServer([InteropTestService()]) { client in
            let response = try await Grpc_Testing_TestService.Client(client).unaryCall(.with {
                $0.responseSize = 100_000
                $0.responseCompressed = .with { $0.value = true }
                $0.expectCompressed = .with { $0.value = true }
                $0.payload = .with { $0.body = [UInt8](repeating: 1, count: 100_000) }
            }, options: CallOptions(compression: .gzip))
            #expect(response.payload?.body.count == 100_000)
        }
    }
}

/// Fails with rich error details in `grpc-status-details-bin` (google.rpc.Status, as gRPC's error model describes).
struct DetailsService: RPCService {
    func registerMethods(with router: inout RPCRouter) {
        router.unary(Grpc_Testing_TestService.Method.emptyCall) { (_: Grpc_Testing_Empty, _) -> Grpc_Testing_Empty in
            var trailers = Metadata()
            trailers.addBinary([8, 9, 10, 0xFF], forKey: "grpc-status-details-bin")
            throw RPCError(code: .failedPrecondition, message: "see details", metadata: trailers)
        }
        router.clientStreaming(Grpc_Testing_TestService.Method.streamingInputCall) {
            (_: RPCAsyncSequence<Grpc_Testing_StreamingInputCallRequest>, _) -> Grpc_Testing_StreamingInputCallResponse in
            throw RPCError(code: .invalidArgument, message: "rejected before reading")
        }
    }
}
