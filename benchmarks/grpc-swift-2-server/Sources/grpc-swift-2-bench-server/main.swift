// grpc.testing.BenchmarkService as grpc-go's benchmark server answers it: every response carries a payload of
// the requested size. Prints `listening on HOST:PORT` once it listens. Usage: grpc-swift-2-bench-server [PORT]
import Foundation
import GRPCCore
import GRPCNIOTransportHTTP2

struct BenchmarkService: Grpc_Testing_BenchmarkService.SimpleServiceProtocol {
    func response(to request: Grpc_Testing_SimpleRequest) -> Grpc_Testing_SimpleResponse {
        .with {
            $0.payload = .with {
                $0.type = request.responseType
                $0.body = Data(count: max(0, Int(request.responseSize)))
            }
        }
    }

    func unaryCall(request: Grpc_Testing_SimpleRequest, context: ServerContext) async throws -> Grpc_Testing_SimpleResponse {
        response(to: request)
    }

    func streamingCall(
        request: RPCAsyncSequence<Grpc_Testing_SimpleRequest, any Error>,
        response: RPCWriter<Grpc_Testing_SimpleResponse>,
        context: ServerContext
    ) async throws {
        for try await message in request { try await response.write(self.response(to: message)) }
    }

    func streamingFromClient(
        request: RPCAsyncSequence<Grpc_Testing_SimpleRequest, any Error>,
        context: ServerContext
    ) async throws -> Grpc_Testing_SimpleResponse {
        var last = Grpc_Testing_SimpleRequest()
        for try await message in request { last = message }
        return response(to: last)
    }

    func streamingFromServer(
        request: Grpc_Testing_SimpleRequest,
        response: RPCWriter<Grpc_Testing_SimpleResponse>,
        context: ServerContext
    ) async throws {
        let message = self.response(to: request)
        while !Task.isCancelled { try await response.write(message) }
    }

    func streamingBothWays(
        request: RPCAsyncSequence<Grpc_Testing_SimpleRequest, any Error>,
        response: RPCWriter<Grpc_Testing_SimpleResponse>,
        context: ServerContext
    ) async throws {
        try await streamingCall(request: request, response: response, context: context)
    }
}

let port = CommandLine.arguments.count > 1 ? Int(CommandLine.arguments[1]) ?? 0 : 0
let server = GRPCServer(
    transport: .http2NIOPosix(address: .ipv4(host: "127.0.0.1", port: port), transportSecurity: .plaintext),
    services: [BenchmarkService()]
)
try await withThrowingDiscardingTaskGroup { group in
    group.addTask { try await server.serve() }
    if let address = try await server.listeningAddress?.ipv4 {
        // Unbuffered, so that a script reading the pipe sees it at once.
        FileHandle.standardOutput.write(Data("listening on \(address.host):\(address.port)\n".utf8))
    }
}
