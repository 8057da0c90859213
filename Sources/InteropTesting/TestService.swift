import RPCCore
import StandardProtos

/// `grpc.testing.TestService` as the interop spec's server features define it
/// (grpc/grpc `doc/interop-test-descriptions.md`, section "Server").
public struct InteropTestService: Grpc_Testing_TestService.ServiceProtocol {
    public init() {}

    static let echoInitialKey = "x-grpc-test-echo-initial"
    static let echoTrailingKey = "x-grpc-test-echo-trailing-bin"

    public func emptyCall(_ request: Grpc_Testing_Empty, context: ServerContext) async throws -> Grpc_Testing_Empty {
        try echoMetadata(context)
        return Grpc_Testing_Empty()
    }

    public func unaryCall(_ request: Grpc_Testing_SimpleRequest, context: ServerContext) async throws -> Grpc_Testing_SimpleResponse {
        try echoMetadata(context)
        try checkCompression(expected: request.expectCompressed?.value, context: context)
        if let status = request.responseStatus, status.code != 0 {
            throw RPCError(code: StatusCode(rawValue: Int(status.code)), message: status.message)
        }
        if let compressed = request.responseCompressed {
            context.responseMetadata.compressMessages = compressed.value
        }
        let body = try payload(type: request.responseType, size: request.responseSize)
        return .with { $0.payload = body }
    }

    public func cacheableUnaryCall(_ request: Grpc_Testing_SimpleRequest, context: ServerContext) async throws -> Grpc_Testing_SimpleResponse {
        try await unaryCall(request, context: context)
    }

    public func streamingOutputCall(
        _ request: Grpc_Testing_StreamingOutputCallRequest,
        responses: RPCWriter<Grpc_Testing_StreamingOutputCallResponse>,
        context: ServerContext
    ) async throws {
        try echoMetadata(context)
        if let status = request.responseStatus, status.code != 0 {
            throw RPCError(code: StatusCode(rawValue: Int(status.code)), message: status.message)
        }
        for parameters in request.responseParameters {
            try await respond(parameters, type: request.responseType, responses: responses, context: context)
        }
    }

    public func streamingInputCall(
        _ requests: RPCAsyncSequence<Grpc_Testing_StreamingInputCallRequest>,
        context: ServerContext
    ) async throws -> Grpc_Testing_StreamingInputCallResponse {
        var total: Int32 = 0
        for try await request in requests {
            try checkCompression(expected: request.expectCompressed?.value, context: context)
            total += Int32(request.payload?.body.count ?? 0)
        }
        return .with { $0.aggregatedPayloadSize = total }
    }

    public func fullDuplexCall(
        _ requests: RPCAsyncSequence<Grpc_Testing_StreamingOutputCallRequest>,
        responses: RPCWriter<Grpc_Testing_StreamingOutputCallResponse>,
        context: ServerContext
    ) async throws {
        try echoMetadata(context)
        for try await request in requests {
            if let status = request.responseStatus, status.code != 0 {
                throw RPCError(code: StatusCode(rawValue: Int(status.code)), message: status.message)
            }
            for parameters in request.responseParameters {
                try await respond(parameters, type: request.responseType, responses: responses, context: context)
            }
        }
    }

    public func halfDuplexCall(
        _ requests: RPCAsyncSequence<Grpc_Testing_StreamingOutputCallRequest>,
        responses: RPCWriter<Grpc_Testing_StreamingOutputCallResponse>,
        context: ServerContext
    ) async throws {
        try echoMetadata(context)
        var buffered: [Grpc_Testing_StreamingOutputCallRequest] = []
        for try await request in requests { buffered.append(request) }
        for request in buffered {
            for parameters in request.responseParameters {
                try await respond(parameters, type: request.responseType, responses: responses, context: context)
            }
        }
    }

    public func unimplementedCall(_ request: Grpc_Testing_Empty, context: ServerContext) async throws -> Grpc_Testing_Empty {
        throw RPCError(code: .unimplemented, message: "UnimplementedCall is not implemented, on purpose")
    }

    /// Observes `interval_us` (sleeping before the response) and `compressed`.
    private func respond(
        _ parameters: Grpc_Testing_ResponseParameters,
        type: Grpc_Testing_PayloadType,
        responses: RPCWriter<Grpc_Testing_StreamingOutputCallResponse>,
        context: ServerContext
    ) async throws {
        if parameters.intervalUs > 0 {
            try await Task.sleep(for: .microseconds(Int(parameters.intervalUs)))
        }
        context.responseMetadata.compressMessages = parameters.compressed?.value ?? false
        let body = try payload(type: type, size: parameters.size)
        try await responses.write(.with { $0.payload = body })
    }

    private func payload(type: Grpc_Testing_PayloadType, size: Int32) throws -> Grpc_Testing_Payload {
        guard type == .compressable else {
            throw RPCError(code: .invalidArgument, message: "unsupported response type \(type)")
        }
        guard size >= 0 else { throw RPCError(code: .invalidArgument, message: "negative response size") }
        return .with { $0.type = type; $0.body = [UInt8](repeating: 0, count: Int(size)) }
    }

    /// Echo Metadata: `x-grpc-test-echo-initial` into the response headers, `x-grpc-test-echo-trailing-bin`
    /// into the trailers.
    private func echoMetadata(_ context: ServerContext) throws {
        for value in context.requestMetadata[stringValues: Self.echoInitialKey] {
            try context.responseMetadata.addInitial([Self.echoInitialKey: .string(value)])
        }
        for value in context.requestMetadata[binaryValues: Self.echoTrailingKey] {
            context.responseMetadata.addTrailing([Self.echoTrailingKey: .binary(value)])
        }
    }

    /// CompressedRequest: a message that expects compression must have been compressed.
    private func checkCompression(expected: Bool?, context: ServerContext) throws {
        if expected == true, context.requestEncoding == nil {
            throw RPCError(code: .invalidArgument, message: "expected a compressed request message")
        }
    }
}
