import NIOPosix
import RPCCore
import RPCHTTP2
import StandardProtos

/// Connections that made one call each and now sit idle, for measuring what an idle connection costs a server.
public struct IdleConnections: Sendable {
    let transports: [HTTP2ClientTransport]

    public var count: Int { transports.count }

    /// Opens `count` connections, at most 100 at a time, each with one empty `UnaryCall`.
    public static func open(host: String, port: Int, count: Int) async throws -> IdleConnections {
        let request = try Grpc_Testing_SimpleRequest().serializedBytes()
        let transports = (0..<count).map { _ in HTTP2ClientTransport(host: host, port: port) }
        for start in stride(from: 0, to: count, by: 100) {
            try await withThrowingTaskGroup(of: Void.self) { group in
                for transport in transports[start..<min(count, start + 100)] {
                    group.addTask {
                        try await transport.withStream(
                            descriptor: Grpc_Testing_BenchmarkService.Method.unaryCall, metadata: [:], options: .defaults
                        ) { stream in
                            try await stream.outbound.write(request)
                            try await stream.finish()
                            for try await part in stream.inbound {
                                if case .status(let status, _) = part, status.code != .ok {
                                    throw RPCError(code: status.code, message: status.message)
                                }
                            }
                        }
                    }
                }
                try await group.waitForAll()
            }
        }
        return IdleConnections(transports: transports)
    }

    public func close() async {
        for transport in transports { await transport.close() }
    }
}
