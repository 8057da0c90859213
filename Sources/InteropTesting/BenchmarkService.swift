import RPCCore
import StandardProtos

/// `grpc.testing.BenchmarkService` as grpc-go's benchmark server implements it (`benchmark/benchmark.go`):
/// every response carries a payload of the requested size. scripts/bench-unary drives it with h2load.
public struct BenchmarkService: Grpc_Testing_BenchmarkService.ServiceProtocol {
    public init() {}

    public func unaryCall(_ request: Grpc_Testing_SimpleRequest, context: ServerContext) async throws -> Grpc_Testing_SimpleResponse {
        response(to: request)
    }

    public func streamingCall(
        _ requests: RPCAsyncSequence<Grpc_Testing_SimpleRequest>,
        responses: RPCWriter<Grpc_Testing_SimpleResponse>,
        context: ServerContext
    ) async throws {
        for try await request in requests { try await responses.write(response(to: request)) }
    }

    public func streamingFromClient(
        _ requests: RPCAsyncSequence<Grpc_Testing_SimpleRequest>,
        context: ServerContext
    ) async throws -> Grpc_Testing_SimpleResponse {
        var last = Grpc_Testing_SimpleRequest()
        for try await request in requests { last = request }
        return response(to: last)
    }

    public func streamingFromServer(
        _ request: Grpc_Testing_SimpleRequest,
        responses: RPCWriter<Grpc_Testing_SimpleResponse>,
        context: ServerContext
    ) async throws {
        let message = response(to: request)
        while !Task.isCancelled { try await responses.write(message) }
    }

    public func streamingBothWays(
        _ requests: RPCAsyncSequence<Grpc_Testing_SimpleRequest>,
        responses: RPCWriter<Grpc_Testing_SimpleResponse>,
        context: ServerContext
    ) async throws {
        try await streamingCall(requests, responses: responses, context: context)
    }

    private func response(to request: Grpc_Testing_SimpleRequest) -> Grpc_Testing_SimpleResponse {
        .with {
            $0.payload = .with {
                $0.type = request.responseType
                $0.body = [UInt8](repeating: 0, count: max(0, Int(request.responseSize)))
            }
        }
    }
}
