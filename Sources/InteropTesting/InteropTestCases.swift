import RPCCore
import StandardProtos

/// The client side of the gRPC interop cases (grpc/grpc `doc/interop-test-descriptions.md`), runnable
/// against any server. A case throws ``InteropFailure`` when the server does not behave.
public enum InteropTestCase: String, CaseIterable, Sendable {
    case emptyUnary = "empty_unary"
    case largeUnary = "large_unary"
    case clientStreaming = "client_streaming"
    case serverStreaming = "server_streaming"
    case pingPong = "ping_pong"
    case emptyStream = "empty_stream"
    case cancelAfterBegin = "cancel_after_begin"
    case cancelAfterFirstResponse = "cancel_after_first_response"
    case timeoutOnSleepingServer = "timeout_on_sleeping_server"
    case customMetadata = "custom_metadata"
    case statusCodeAndMessage = "status_code_and_message"
    case specialStatusMessage = "special_status_message"
    case unimplementedMethod = "unimplemented_method"
    case unimplementedService = "unimplemented_service"
    case clientCompressedUnary = "client_compressed_unary"
    case serverCompressedUnary = "server_compressed_unary"
    case clientCompressedStreaming = "client_compressed_streaming"
    case serverCompressedStreaming = "server_compressed_streaming"

    public func run(with client: RPCClient) async throws {
        let test = Grpc_Testing_TestService.Client(client)
        switch self {
        case .emptyUnary:
            _ = try await test.emptyCall(Grpc_Testing_Empty())
        case .largeUnary:
            let response = try await test.unaryCall(.with {
                $0.responseSize = 314_159
                $0.payload = payload(271_828)
            })
            try expect(response.payload?.body.count == 314_159, "response payload of 314159 bytes")
        case .clientStreaming:
            let response = try await test.streamingInputCall { writer in
                for size in [27_182, 8, 1_828, 45_904] { try await writer.write(.with { $0.payload = payload(size) }) }
            }
            try expect(response.aggregatedPayloadSize == 74_922, "aggregated size 74922")
        case .serverStreaming:
            let expected = [31_415, 9, 2_653, 58_979]
            let received = try await test.streamingOutputCall(.with {
                $0.responseParameters = expected.map { size in .with { $0.size = Int32(size) } }
            }) { try await responseSizes($0) }
            try expect(received == expected, "response sizes \(expected), got \(received)")
        case .pingPong:
            try await pingPong(test)
        case .emptyStream:
            let received = try await test.fullDuplexCall(requests: { _ in }) { try await responseSizes($0) }
            try expect(received.isEmpty, "no responses")
        case .cancelAfterBegin:
            let call = Task {
                try await test.streamingInputCall { _ in
                    try await Task.sleep(for: .seconds(10))
                }
            }
            try await Task.sleep(for: .milliseconds(50))
            call.cancel()
            try await expectCancelled { _ = try await call.value }
        case .cancelAfterFirstResponse:
            try await expectCancelled {
                try await test.fullDuplexCall(requests: { writer in
                    try await writer.write(.with {
                        $0.responseParameters = [.with { $0.size = 31_415 }]
                        $0.payload = payload(27_182)
                    })
                    try await Task.sleep(for: .seconds(10))
                }) { response in
                    var messages = response.messages.makeAsyncIterator()
                    _ = try await messages.next()
                    throw CancellationError()
                }
            }
        case .timeoutOnSleepingServer:
            do {
                try await test.fullDuplexCall(options: CallOptions(timeout: .milliseconds(1)), requests: { writer in
                    try await writer.write(.with { $0.payload = payload(27_182) })
                    try await Task.sleep(for: .seconds(10))
                }) { response in
                    for try await _ in response.messages {}
                }
                throw InteropFailure("expected DEADLINE_EXCEEDED, the call succeeded")
            } catch let error as RPCError {
                try expect(error.code == .deadlineExceeded, "DEADLINE_EXCEEDED, got \(error)")
            }
        case .customMetadata:
            try await customMetadata(test)
        case .statusCodeAndMessage:
            let echo = Grpc_Testing_EchoStatus.with { $0.code = 2; $0.message = "test status message" }
            try await expectStatus(.unknown, "test status message") {
                _ = try await test.unaryCall(.with { $0.responseStatus = echo })
            }
            try await expectStatus(.unknown, "test status message") {
                try await test.fullDuplexCall(requests: { try await $0.write(.with { $0.responseStatus = echo }) }) {
                    for try await _ in $0.messages {}
                }
            }
        case .specialStatusMessage:
            let message = "\t\ntest with whitespace\r\nand Unicode BMP ☺ and non-BMP 😈\t\n"
            try await expectStatus(.unknown, message) {
                _ = try await test.unaryCall(.with { $0.responseStatus = .with { $0.code = 2; $0.message = message } })
            }
        case .unimplementedMethod:
            try await expectStatus(.unimplemented) { _ = try await test.unimplementedCall(Grpc_Testing_Empty()) }
        case .unimplementedService:
            let other = Grpc_Testing_UnimplementedService.Client(client)
            try await expectStatus(.unimplemented) { _ = try await other.unimplementedCall(Grpc_Testing_Empty()) }
        case .clientCompressedUnary:
            // The probe: a request that expects compression, sent without it, must be refused.
            try await expectStatus(.invalidArgument) {
                _ = try await test.unaryCall(.with { $0.expectCompressed = .with { $0.value = true }; $0.responseSize = 314_159; $0.payload = payload(271_828) })
            }
            for compressed in [true, false] {
                let response = try await test.unaryCall(.with {
                    $0.expectCompressed = .with { $0.value = compressed }
                    $0.responseSize = 314_159
                    $0.payload = payload(271_828)
                }, options: CallOptions(compression: compressed ? .gzip : nil))
                try expect(response.payload?.body.count == 314_159, "response payload of 314159 bytes")
            }
        case .serverCompressedUnary:
            for compressed in [true, false] {
                let response = try await test.unaryCall(.with {
                    $0.responseCompressed = .with { $0.value = compressed }
                    $0.responseSize = 314_159
                    $0.payload = payload(271_828)
                })
                try expect(response.payload?.body.count == 314_159, "response payload of 314159 bytes")
            }
        case .clientCompressedStreaming:
            try await expectStatus(.invalidArgument) {
                _ = try await test.streamingInputCall { writer in
                    try await writer.write(.with { $0.expectCompressed = .with { $0.value = true }; $0.payload = payload(27_182) })
                }
            }
            let response = try await test.streamingInputCall(options: CallOptions(compression: .gzip)) { writer in
                try await writer.write(.with { $0.expectCompressed = .with { $0.value = true }; $0.payload = payload(27_182) })
                try await writer.write(.with { $0.expectCompressed = .with { $0.value = false }; $0.payload = payload(45_904) })
            }
            try expect(response.aggregatedPayloadSize == 73_086, "aggregated size 73086")
        case .serverCompressedStreaming:
            let received = try await test.streamingOutputCall(.with {
                $0.responseParameters = [
                    .with { $0.compressed = .with { $0.value = true }; $0.size = 31_415 },
                    .with { $0.compressed = .with { $0.value = false }; $0.size = 92_653 },
                ]
            }) { try await responseSizes($0) }
            try expect(received == [31_415, 92_653], "response sizes [31415, 92653], got \(received)")
        }
    }

    private func pingPong(_ test: Grpc_Testing_TestService.Client) async throws {
        let requestSizes = [27_182, 8, 1_828, 45_904]
        let responseSizes = [31_415, 9, 2_653, 58_979]
        let (turns, next) = AsyncStream<Void>.makeStream()
        let received = try await test.fullDuplexCall(requests: { writer in
            var turn = turns.makeAsyncIterator()
            for (request, response) in zip(requestSizes, responseSizes) {
                try await writer.write(.with {
                    $0.responseParameters = [.with { $0.size = Int32(response) }]
                    $0.payload = payload(request)
                })
                _ = await turn.next()  // lock-step: wait for the response before the next request
            }
        }) { response in
            var out: [Int] = []
            for try await message in response.messages {
                out.append(message.payload?.body.count ?? -1)
                next.yield()
            }
            return out
        }
        try expect(received == responseSizes, "response sizes \(responseSizes), got \(received)")
    }

    private func customMetadata(_ test: Grpc_Testing_TestService.Client) async throws {
        let initial = "test_initial_metadata_value"
        let trailing: [UInt8] = [0xAB, 0xAB, 0xAB]
        var metadata: Metadata = ["x-grpc-test-echo-initial": .string(initial)]
        metadata.addBinary(trailing, forKey: "x-grpc-test-echo-trailing-bin")
        let request = Grpc_Testing_SimpleRequest.with { $0.responseSize = 314_159; $0.payload = payload(271_828) }
        let unary: ClientResponse<Grpc_Testing_SimpleResponse> = try await test.client.unary(
            request: request,
            descriptor: Grpc_Testing_TestService.Method.unaryCall, metadata: metadata
        )
        try expect(unary.metadata.first("x-grpc-test-echo-initial") == initial, "initial metadata echoed (unary)")
        try expect(unary.trailingMetadata[binaryValues: "x-grpc-test-echo-trailing-bin"] == [trailing], "trailing metadata echoed (unary)")
        let (initialSeen, trailers) = try await test.fullDuplexCall(metadata: metadata, requests: { writer in
            try await writer.write(.with { $0.responseParameters = [.with { $0.size = 314_159 }]; $0.payload = payload(271_828) })
        }) { response in
            for try await _ in response.messages {}
            return (response.metadata.first("x-grpc-test-echo-initial"), response.trailingMetadata)
        }
        try expect(initialSeen == initial, "initial metadata echoed (bidi)")
        try expect(trailers[binaryValues: "x-grpc-test-echo-trailing-bin"] == [trailing], "trailing metadata echoed (bidi)")
    }
}

public struct InteropFailure: Error, CustomStringConvertible {
    public var description: String
    public init(_ description: String) { self.description = description }
}

private func payload(_ size: Int) -> Grpc_Testing_Payload {
    .with { $0.body = [UInt8](repeating: 0, count: size) }
}

private func responseSizes(_ response: StreamingClientResponse<Grpc_Testing_StreamingOutputCallResponse>) async throws -> [Int] {
    var out: [Int] = []
    for try await message in response.messages { out.append(message.payload?.body.count ?? -1) }
    return out
}

private func expect(_ condition: Bool, _ what: @autoclosure () -> String) throws {
    if !condition { throw InteropFailure("expected \(what())") }
}

private func expectStatus(_ code: StatusCode, _ message: String? = nil, _ body: () async throws -> Void) async throws {
    do {
        try await body()
    } catch let error as RPCError {
        try expect(error.code == code, "\(code), got \(error.code): \(error.message)")
        if let message { try expect(error.message == message, "message \(message.debugDescription), got \(error.message.debugDescription)") }
        return
    }
    throw InteropFailure("expected \(code), the call succeeded")
}

/// CANCELLED from the transport, or the task's own cancellation.
private func expectCancelled<T>(_ body: () async throws -> T) async throws {
    do {
        _ = try await body()
    } catch let error as RPCError {
        try expect(error.code == .cancelled, "CANCELLED, got \(error)")
        return
    } catch is CancellationError {
        return
    }
    throw InteropFailure("expected CANCELLED, the call succeeded")
}
