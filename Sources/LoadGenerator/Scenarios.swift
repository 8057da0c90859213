import GatewayProtos
import RPCCore
import StandardProtos
import Synchronization

/// The scenarios `gateway-bench run` knows.
public enum ScenarioName: String, CaseIterable, Sendable, Codable {
    // Any server of grpc.testing.BenchmarkService.
    case unary
    case streamingPingPong = "streaming-ping-pong"
    case streamingQPS = "streaming-qps"
    case serverStreaming = "server-streaming"
    case clientStreaming = "client-streaming"
    /// `grpc.health.v1.Health/Check` with no service named: any server with the standard health service, the
    /// gateway's included (its cheapest call, the baseline its real calls are compared with).
    case health
    // The gateway's own services (a token is needed).
    case getUser = "get-user"
    case publish
    case publishBatch = "publish-batch"
    /// `EventService/PublishStream`: events on long streams, `--in-flight` unacknowledged per stream.
    case publishStream = "publish-stream"
    case fanout
    case upload
    case download

    public var isGateway: Bool {
        switch self {
        case .unary, .streamingPingPong, .streamingQPS, .serverStreaming, .clientStreaming, .health: false
        default: true
        }
    }

    /// Scenarios whose operations have a response to time, and so an open loop.
    public var allowsOpenLoop: Bool { self != .serverStreaming && self != .clientStreaming }
}

/// One kind of load: how a worker drives it, and what has to exist before it starts.
protocol Scenario: Sendable {
    /// Once, before the workers start (e.g. the file that `download` fetches).
    func prepare(_ worker: Worker) async throws
    func run(_ worker: Worker) async
    /// Runs every worker to the end of the window; returns lines for the report.
    func runAll(_ workers: [Worker]) async -> [String]
    /// Lines for the report (e.g. a method the server lacked).
    var notes: [String] { get }
}

extension Scenario {
    func prepare(_ worker: Worker) async throws {}

    var notes: [String] { [] }

    func runAll(_ workers: [Worker]) async -> [String] {
        await withTaskGroup(of: Void.self) { group in
            for worker in workers { group.addTask(executorPreference: worker.executor) { await run(worker) } }
        }
        return notes
    }
}

/// What a scenario needs besides the load shape.
public struct ScenarioOptions: Sendable {
    /// Events per `PublishEvents` call (`publish-batch`).
    public var batch = 10
    public init() {}
}

extension ScenarioName {
    func make(shape: LoadShape, options: ScenarioOptions) throws -> any Scenario {
        let payload = [UInt8](repeating: 0x61, count: shape.payload)
        let simple = try Grpc_Testing_SimpleRequest.with {
            $0.responseSize = Int32(shape.payload)
            $0.payload = .with { $0.body = payload }
        }.serializedBytes()
        typealias Bench = Grpc_Testing_BenchmarkService.Method
        switch self {
        case .unary: return Unary(method: Bench.unaryCall, requests: [simple])
        case .streamingPingPong: return PingPong(method: Bench.streamingCall, request: simple)
        case .streamingQPS: return StreamingQPS(method: Bench.streamingCall, request: simple)
        case .serverStreaming: return ServerStreaming(method: MethodChoice(Bench.streamingFromServer), request: simple)
        case .clientStreaming: return ClientStreaming(method: MethodChoice(Bench.streamingFromClient), request: simple)
        case .health: return Unary(method: Grpc_Health_V1_Health.Method.check, requests: [[]])
        case .getUser: return GetUser()
        case .publish:
            let request = try Gateway_Event_V1_PublishEventRequest.with { $0.event = Self.event(payload) }.serializedBytes()
            return Unary(method: Gateway_Event_V1_EventService.Method.publishEvent, requests: [request])
        case .publishBatch:
            let request = try Gateway_Event_V1_PublishEventsRequest.with {
                $0.events = Array(repeating: Self.event(payload), count: max(1, options.batch))
            }.serializedBytes()
            return Unary(method: Gateway_Event_V1_EventService.Method.publishEvents, requests: [request], messagesPerRequest: max(1, options.batch))
        case .publishStream:
            let request = try Gateway_Event_V1_PublishEventRequest.with { $0.event = Self.event(payload) }.serializedBytes()
            return StreamingQPS(method: Gateway_Event_V1_EventService.Method.publishStream, request: request) { reply in
                guard case .error(let status)? = (try? Gateway_Event_V1_PublishStreamResponse(serializedBytes: reply))?.result else { return nil }
                return RPCError(code: StatusCode(rawValue: Int(status.code)), message: status.message)
            }
        case .upload: return Upload(requests: try Upload.requests(payload))
        case .download: return Download(content: payload)
        case .fanout: return Fanout(payload: shape.payload)
        }
    }

    static func event(_ payload: [UInt8]) -> Gateway_Event_V1_NewEvent {
        .with {
            $0.type = "bench.publish"
            $0.aggregateId = "bench"
            $0.payload = payload
        }
    }
}

/// One RPC per operation: write the requests, read the response (unary, and client streaming with a fixed
/// list of requests).
struct Unary: Scenario {
    let method: MethodDescriptor
    let requests: [[UInt8]]
    var messagesPerRequest = 1

    func run(_ worker: Worker) async {
        let sentBytes = requests.reduce(0) { $0 + $1.count }
        while let intended = await worker.nextStart() {
            do {
                let (messages, bytes) = try await Calls.call(worker, method, requests)
                let done = monotonicNanos()
                worker.sent(messages: requests.count * messagesPerRequest, bytes: sentBytes, at: done)
                worker.received(messages: messages, bytes: bytes, at: done)
                worker.completed(intended: intended, at: done)
            } catch {
                worker.failed(error)
                try? await Task.sleep(for: .milliseconds(10))
            }
        }
    }
}

/// A bidirectional stream with one message in flight: each round trip is an operation.
struct PingPong: Scenario {
    let method: MethodDescriptor
    let request: [UInt8]

    func run(_ worker: Worker) async {
        await Calls.withLongStream(worker, method) { stream in
            var inbound = stream.inbound.makeAsyncIterator()
            while let intended = await worker.nextStart() {
                try await Calls.send([request], on: stream, halfClose: false)
                guard let reply = try await Calls.nextMessage(&inbound) else {
                    throw RPCError(code: .internal, message: "the server ended the stream")
                }
                let done = monotonicNanos()
                worker.sent(bytes: request.count, at: done)
                worker.received(bytes: reply.count, at: done)
                worker.completed(intended: intended, at: done)
            }
        }
    }
}

/// A bidirectional stream with `inFlight` messages outstanding (closed loop), or sent at the schedule's pace
/// (open loop); responses come in order, so each is timed from its request's intended start.
struct StreamingQPS: Scenario {
    let method: MethodDescriptor
    let request: [UInt8]
    /// The error a reply carries, if replies can carry one (PublishStream's refused events).
    var refusal: @Sendable ([UInt8]) -> RPCError? = { _ in nil }

    func run(_ worker: Worker) async {
        await Calls.withLongStream(worker, method) { stream in
            let pending = Locked<[UInt64]>([])
            let (credits, credit) = AsyncStream.makeStream(of: Void.self)
            let inFlight = max(1, worker.shape.inFlight)
            // The sender owns the schedule and counts what it sent; the reader records into the worker.
            let sent = try await withThrowingTaskGroup(of: Int?.self) { group in
                group.addTask {
                    var inbound = stream.inbound.makeAsyncIterator()
                    while let reply = try await Calls.nextMessage(&inbound) {
                        let done = monotonicNanos()
                        let intended = pending.withLock { $0.isEmpty ? done : $0.removeFirst() }
                        worker.received(bytes: reply.count, at: done)
                        if let error = refusal(reply) {
                            worker.failed(error)
                        } else {
                            worker.completed(intended: intended, at: done)
                        }
                        credit.yield()
                    }
                    return nil
                }
                group.addTask {
                    var schedule = worker.schedule
                    var sent = 0
                    var inWindow = 0
                    var credits = credits.makeAsyncIterator()
                    while true {
                        if !schedule.isOpenLoop && sent >= inFlight { guard await credits.next() != nil else { break } }
                        guard let intended = await schedule.next() else { break }
                        pending.withLock { $0.append(intended) }
                        try await stream.outbound.write(request)
                        sent += 1
                        let now = monotonicNanos()
                        if now >= worker.window.measureFrom && now <= worker.window.end { inWindow += 1 }
                    }
                    return inWindow
                }
                var sent = 0
                while let next = try await group.next() {
                    if let count = next {
                        sent = count
                        // The window is over: wait for what is in flight (bounded by the call's deadline), then end.
                        try await stream.finish()
                    }
                }
                return sent
            }
            worker.sent(messages: sent, bytes: sent * request.count, at: worker.window.measureFrom)
        }
    }
}

/// A streaming method of `grpc.testing.BenchmarkService`, or, on servers built from the older schema that
/// lacks it (grpc-go up to 1.3x), `UnconstrainedStreamingCall`: a bidirectional stream on which both sides
/// send as fast as they can, which serves for either direction.
final class MethodChoice: Sendable {
    static let unconstrained = MethodDescriptor(
        service: Grpc_Testing_BenchmarkService.descriptor, method: "UnconstrainedStreamingCall", kind: .bidirectionalStreaming
    )
    private let chosen: Locked<MethodDescriptor>
    private let note = Locked<String?>(nil)

    init(_ preferred: MethodDescriptor) {
        chosen = Locked(preferred)
    }

    var method: MethodDescriptor { chosen.withLock { $0 } }

    /// What the report should say: the method the server lacked, if it did.
    var notes: [String] { note.withLock { $0.map { [$0] } ?? [] } }

    /// Tries the preferred method once, and falls back when the server does not implement it.
    func probe(_ worker: Worker, request: [UInt8]) async throws {
        let preferred = method
        do {
            try await worker.transport.withStream(descriptor: preferred, metadata: worker.metadata, options: worker.options) { stream in
                // One request and the half-close, then the first response (or the status).
                try await Calls.send([request], on: stream, halfClose: true)
                var inbound = stream.inbound.makeAsyncIterator()
                _ = try await Calls.nextMessage(&inbound)
            }
        } catch let error as RPCError where error.code == .unimplemented {
            chosen.withLock { $0 = Self.unconstrained }
            note.withLock { $0 = "the server has no \(preferred.method): used UnconstrainedStreamingCall" }
        }
    }
}

/// The one-way streaming scenarios, whose method may fall back (see ``MethodChoice``).
protocol OneWayStreaming: Scenario {
    var method: MethodChoice { get }
    var request: [UInt8] { get }
}

extension OneWayStreaming {
    func prepare(_ worker: Worker) async throws {
        try await method.probe(worker, request: request)
    }

    var notes: [String] { method.notes }
}

/// One request, then the server streams responses as fast as it can: each message is an operation.
struct ServerStreaming: OneWayStreaming {
    let method: MethodChoice
    let request: [UInt8]

    func run(_ worker: Worker) async {
        let method = method.method
        await Calls.withLongStream(worker, method) { stream in
            try await stream.outbound.write(request)
            // UnconstrainedStreamingCall must not see a half-close (grpc-go's server exits on it).
            if method.kind == .serverStreaming { try await stream.finish() }
            var inbound = stream.inbound.makeAsyncIterator()
            while !worker.isOver, let message = try await Calls.nextMessage(&inbound) {
                let done = monotonicNanos()
                worker.received(bytes: message.count, at: done)
                worker.counted(at: done)
            }
            // grpc-go's UnconstrainedStreamingCall exits the process when a stream is cancelled: end the
            // connection instead, as its own benchmark client does.
            if method.kind == .bidirectionalStreaming { await worker.closeConnection() }
        }
    }
}

/// The client streams requests as fast as flow control lets it: each message written is an operation; the
/// server's one response comes after the half-close at the end.
struct ClientStreaming: OneWayStreaming {
    let method: MethodChoice
    let request: [UInt8]

    func run(_ worker: Worker) async {
        let method = method.method
        await Calls.withLongStream(worker, method) { stream in
            let write = {
                while !worker.isOver {
                    try await stream.outbound.write(request)
                    let done = monotonicNanos()
                    worker.sent(bytes: request.count, at: done)
                    worker.counted(at: done)
                }
            }
            guard method.kind == .bidirectionalStreaming else {
                try await write()
                try await stream.finish()
                var inbound = stream.inbound.makeAsyncIterator()
                while try await Calls.nextMessage(&inbound) != nil {}
                return
            }
            // UnconstrainedStreamingCall: the server sends too; its responses are read (and dropped) so that its
            // sends never wait on flow control, and the stream ends with its connection, since grpc-go's server
            // exits the process on a half-close or a cancelled stream.
            try await withThrowingTaskGroup(of: Void.self) { group in
                group.addTask {
                    var inbound = stream.inbound.makeAsyncIterator()
                    while !worker.isOver, try await Calls.nextMessage(&inbound) != nil {}
                }
                try await write()
                await worker.closeConnection()
                group.cancelAll()
            }
        }
    }
}

/// `GetCurrentUser`: the token verified (cached), one read of the user. The user is created first if needed.
struct GetUser: Scenario {
    func prepare(_ worker: Worker) async throws {
        do {
            _ = try await Calls.call(worker, Gateway_User_V1_UserService.Method.getCurrentUser, [[]])
        } catch let error as RPCError where error.code == .notFound {
            let create = try Gateway_User_V1_CreateUserRequest.with {
                $0.email = "bench-\(UInt32.random(in: 0...UInt32.max))@example.com"
                $0.displayName = "gateway-bench"
            }.serializedBytes()
            _ = try await Calls.call(worker, Gateway_User_V1_UserService.Method.createUser, [create])
        }
    }

    func run(_ worker: Worker) async {
        await Unary(method: Gateway_User_V1_UserService.Method.getCurrentUser, requests: [[]]).run(worker)
    }
}

/// `UploadFile` of `payload` bytes (a header, then 64 KiB chunks) per operation.
struct Upload: Scenario {
    let requests: [[UInt8]]

    static func requests(_ content: [UInt8]) throws -> [[UInt8]] {
        var requests = [try Gateway_File_V1_UploadFileRequest.with {
            $0.data = .header(.with { $0.filename = "bench.bin"; $0.expectedSize = Int64(content.count) })
        }.serializedBytes()]
        for start in stride(from: 0, to: content.count, by: 65_536) {
            requests.append(try Gateway_File_V1_UploadFileRequest.with {
                $0.data = .chunk(Array(content[start..<min(content.count, start + 65_536)]))
            }.serializedBytes())
        }
        return requests
    }

    func run(_ worker: Worker) async {
        await Unary(method: Gateway_File_V1_FileService.Method.uploadFile, requests: requests).run(worker)
    }
}

/// `DownloadFile` of one file of `payload` bytes (uploaded first) per operation.
struct Download: Scenario {
    let content: [UInt8]
    let request = Locked<[UInt8]>([])

    func prepare(_ worker: Worker) async throws {
        let stored = try await worker.transport.withStream(
            descriptor: Gateway_File_V1_FileService.Method.uploadFile, metadata: worker.metadata, options: worker.options
        ) { stream in
            for request in try Upload.requests(content) { try await stream.outbound.write(request) }
            try await stream.finish()
            var inbound = stream.inbound.makeAsyncIterator()
            guard let reply = try await Calls.nextMessage(&inbound) else {
                throw RPCError(code: .internal, message: "UploadFile answered nothing")
            }
            return try Gateway_File_V1_FileInfo(serializedBytes: reply)
        }
        let bytes = try Gateway_File_V1_DownloadFileRequest.with { $0.id = stored.id }.serializedBytes()
        request.withLock { $0 = bytes }
    }

    func run(_ worker: Worker) async {
        await Unary(method: Gateway_File_V1_FileService.Method.downloadFile, requests: [request.withLock { $0 }]).run(worker)
    }
}
