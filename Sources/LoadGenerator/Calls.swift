import RPCCore

/// RPCs straight on the transport, with requests encoded once up front: the load generator should cost as
/// little per call as a client can, so that what it measures is the server.
enum Calls {
    /// Writes `requests`, half-closes, and reads to the end: the response messages and their bytes.
    static func call(_ worker: Worker, _ method: MethodDescriptor, _ requests: [[UInt8]]) async throws -> (messages: Int, bytes: Int) {
        try await worker.transport.withStream(descriptor: method, metadata: worker.metadata, options: worker.options) { stream in
            try await send(requests, on: stream, halfClose: true)
            var inbound = stream.inbound.makeAsyncIterator()
            var messages = 0
            var bytes = 0
            while let message = try await nextMessage(&inbound) {
                messages += 1
                bytes += message.count
            }
            return (messages, bytes)
        }
    }

    /// Writes `requests` (and half-closes). A server may answer and end the call before the last write is
    /// through (grpc-go answers a unary call without waiting for the half-close): the write then fails with
    /// ``CallEndedError`` and the call's outcome is the status, which the reader gets.
    static func send(_ requests: [[UInt8]], on stream: RPCClientStream, halfClose: Bool) async throws {
        do {
            for request in requests { try await stream.outbound.write(request) }
            if halfClose { try await stream.finish() }
        } catch let error as RPCError where error.cause is CallEndedError {
            return
        }
    }

    /// The next response message; nil at an OK status; an ``RPCError`` for any other status.
    static func nextMessage(_ inbound: inout RPCAsyncSequence<ClientResponsePart>.AsyncIterator) async throws -> [UInt8]? {
        while let part = try await inbound.next() {
            switch part {
            case .metadata:
                continue
            case .message(let bytes):
                return bytes
            case .status(let status, let trailers):
                guard status.code == .ok else { throw RPCError(code: status.code, message: status.message, metadata: trailers) }
                return nil
            }
        }
        throw RPCError(code: .internal, message: "the stream ended without a status")
    }

    /// Runs `body` with a stream that lasts the whole run; if it fails, the failure is counted and, until the
    /// run is over, a new stream is opened (after a short pause, so that a refused connection is not a spin).
    static func withLongStream(
        _ worker: Worker, _ method: MethodDescriptor, _ body: @Sendable (RPCClientStream) async throws -> Void
    ) async {
        let lifetime = worker.streamOptions
        while !worker.isOver {
            do {
                try await worker.transport.withStream(descriptor: method, metadata: worker.metadata, options: lifetime, body)
            } catch {
                worker.failed(error)
                try? await Task.sleep(for: .milliseconds(10))
            }
        }
    }
}
