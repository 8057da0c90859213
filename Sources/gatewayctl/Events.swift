import ArgumentParser
import Foundation
import GatewayClient
import Synchronization

struct EventCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "event", abstract: "Events: publish, list, and subscribe (catch-up, then live).",
        subcommands: [Publish.self, PublishBatch.self, List.self, Subscribe.self]
    )

    static let columns: [Column<Gateway_Event_V1_Event>] = [
        Column("SEQUENCE") { "\($0.sequence)" }, Column("ID") { $0.id }, Column("TYPE") { $0.type }, Column("AGGREGATE") { $0.aggregateId },
        Column("PUBLISHER") { $0.publisher }, Column("OCCURRED") { $0.occurredAt?.text ?? "" }, Column("BYTES") { "\($0.payload.count)" },
    ]

    /// `key=value` pairs from repeated options.
    static func pairs(_ entries: [String], option: String) throws -> [String: String] {
        var result: [String: String] = [:]
        for entry in entries {
            guard let equals = entry.firstIndex(of: "="), equals != entry.startIndex else {
                throw UsageError("\(option) \(entry): expected key=value")
            }
            result[String(entry[..<equals])] = String(entry[entry.index(after: equals)...])
        }
        return result
    }

    struct Publish: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Publish one event; prints its id and sequence number.")
        @OptionGroup var options: GlobalOptions
        @Option var type: String
        @Option var aggregateId = ""
        @Option(help: ArgumentHelp("The payload: @file, - for stdin, or the text itself.", valueName: "@file|-|text")) var data = ""
        @Option var contentType = ""
        @Option(name: .customLong("attr"), help: ArgumentHelp("An attribute (repeatable).", valueName: "key=value")) var attributes: [String] = []
        @Option var idempotencyKey = ""

        func run() async throws {
            let context = try Context(options)
            let event = try Gateway_Event_V1_NewEvent.with {
                $0.type = type
                $0.aggregateId = aggregateId
                $0.payload = try Self.payload(data)
                $0.contentType = contentType
                $0.attributes = try EventCommand.pairs(attributes, option: "--attr")
                $0.idempotencyKey = idempotencyKey
            }
            let response = try await context.withConnection { try await $0.events.publishEvent(.with { $0.event = event }) }
            try Printer(format: context.output).message(response)
        }

        static func payload(_ data: String) throws -> [UInt8] {
            if data == "-" { return Array(FileHandle.standardInput.readDataToEndOfFile()) }
            if data.hasPrefix("@") {
                let path = String(data.dropFirst())
                guard let contents = FileManager.default.contents(atPath: path) else { throw LocalFailure("\(path): no such file") }
                return Array(contents)
            }
            return Array(data.utf8)
        }
    }

    struct PublishBatch: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "publish-batch",
            abstract: "Publish the events read from stdin, one JSON object (a NewEvent, payload in base64) per line.",
            discussion: "All lines are checked before anything is sent. Each call carries at most --batch events, all or none."
        )
        @OptionGroup var options: GlobalOptions
        @Option(help: "Events per call (the gateway takes up to 500).") var batch = 500

        func run() async throws {
            let context = try Context(options)
            var events: [Gateway_Event_V1_NewEvent] = []
            var number = 0
            while let line = readLine(strippingNewline: true) {
                number += 1
                guard !line.trimmingCharacters(in: .whitespaces).isEmpty else { continue }
                do {
                    events.append(try Gateway_Event_V1_NewEvent(jsonString: line))
                } catch {
                    throw UsageError("stdin line \(number): \(error)")
                }
            }
            guard !events.isEmpty else { throw UsageError("no events on stdin") }
            let printer = Printer(format: context.output)
            let size = max(1, batch)
            try await context.withConnection { connection in
                for start in stride(from: 0, to: events.count, by: size) {
                    let chunk = Array(events[start..<min(events.count, start + size)])
                    let response = try await connection.events.publishEvents(.with { $0.events = chunk })
                    for result in response.results { try printer.message(result) }
                }
            }
        }
    }

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Stored events after a sequence number, a page at a time.")
        @OptionGroup var options: GlobalOptions
        @Option(name: .customLong("type"), help: "Only events of this type (repeatable).") var types: [String] = []
        @Option(name: .customLong("aggregate-id"), help: "Only events about this aggregate (repeatable).") var aggregates: [String] = []
        @Option var after: UInt64 = 0
        @Option var pageSize: Int32 = 100
        @Flag(help: "Follow the page tokens to the end.") var all = false

        func run() async throws {
            let context = try Context(options)
            let printer = Printer(format: context.output)
            let events = try await context.withConnection { connection in
                var token = ""
                var events: [Gateway_Event_V1_Event] = []
                repeat {
                    let page = try await connection.events.listEvents(.with {
                        $0.filter = .with {
                            $0.types = types
                            $0.aggregateIds = aggregates
                        }
                        $0.afterSequence = after
                        $0.pageSize = pageSize
                        $0.pageToken = token
                    })
                    events += page.events
                    token = page.nextPageToken
                } while all && !token.isEmpty
                return events
            }
            try printer.list(events, columns: EventCommand.columns)
        }
    }

    struct Subscribe: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Print events as JSON lines as they are stored, until Ctrl-C or --count events.",
            discussion: """
                From --from (catch-up, then live) or from now. When the connection drops, it reconnects with backoff \
                and resumes right after the last event it printed (or the last position the gateway reported): no \
                event is skipped or printed twice.
                """
        )
        @OptionGroup var options: GlobalOptions
        @Option(name: .customLong("from"), help: "The first sequence number to deliver (default: only new events).") var from: UInt64?
        @Option(name: .customLong("type"), help: "Only events of this type (repeatable).") var types: [String] = []
        @Option(name: .customLong("aggregate-id"), help: "Only events about this aggregate (repeatable).") var aggregates: [String] = []
        @Option(help: "Stop after this many events.") var count: Int?
        @Option(help: "Give up after this many reconnects in a row without an event (default: never).") var maxRetries: Int?

        /// How far the subscription got, shared with the response handler.
        final class Position: Sendable {
            struct State {
                /// Everything up to here has been printed or reported as not matching.
                var cursor: UInt64?
                var printed = 0
                var failures = 0
            }

            let state: Mutex<State>
            init(cursor: UInt64?) { state = Mutex(State(cursor: cursor)) }
        }

        func run() async throws {
            let context = try Context(options)
            let printer = Printer(format: .json)
            let position = Position(cursor: from.map { $0 == 0 ? 0 : $0 - 1 })
            let count = self.count
            // With --timeout, one deadline for the whole subscription, reconnects included; else none.
            let deadline = context.explicitTimeout.map { ContinuousClock.now + $0 }
            let connection = try context.connect()
            defer { Task { await connection.close() } }
            func done() -> Bool { count.map { limit in position.state.withLock { $0.printed >= limit } } ?? false }
            while !done() {
                let cursor = position.state.withLock { $0.cursor }
                let request = Gateway_Event_V1_SubscribeRequest.with {
                    $0.filter = .with {
                        $0.types = types
                        $0.aggregateIds = aggregates
                    }
                    if let cursor { $0.fromSequence = cursor + 1 }
                    $0.heartbeatInterval = .with { $0.seconds = 5 }
                }
                do {
                    let timeout = deadline.map { $0 - ContinuousClock.now } ?? .seconds(31_536_000)
                    try await connection.events.subscribe(request, options: .init(timeout: timeout)) { response in
                        for try await item in response.messages {
                            switch item.item {
                            case .event(let event)?:
                                let fresh = position.state.withLock { state in state.cursor.map { event.sequence > $0 } ?? true }
                                guard fresh else { continue }
                                try printer.message(event)
                                let finished = position.state.withLock { state in
                                    state.cursor = event.sequence
                                    state.printed += 1
                                    state.failures = 0
                                    return count.map { state.printed >= $0 } ?? false
                                }
                                if finished { return }
                            case .heartbeat(let beat)?:
                                position.state.withLock { state in
                                    // 0: no position yet (a non-admin's subscription from now).
                                    if beat.lastSequence > 0, state.cursor.map({ beat.lastSequence > $0 }) ?? true {
                                        state.cursor = beat.lastSequence
                                    }
                                }
                            case nil:
                                continue
                            }
                        }
                    }
                } catch let error as RPCError where Self.retryable(error.code) {
                    let (failures, cursor) = position.state.withLock { state in
                        state.failures += 1
                        return (state.failures, state.cursor)
                    }
                    if let maxRetries, failures > maxRetries { throw error }
                    let wait = min(5_000, 100 << min(failures, 6))
                    if let deadline, error.code == .deadlineExceeded || ContinuousClock.now + .milliseconds(wait) >= deadline {
                        throw RPCError(code: .deadlineExceeded, message: "--timeout expired (\(error.code): \(error.message))")
                    }
                    FileHandle.standardErrorLine("subscription dropped (\(error.code)); reconnecting in \(wait) ms after sequence \(cursor.map(String.init) ?? "now")")
                    try await Task.sleep(for: .milliseconds(wait))
                }
            }
        }

        static func retryable(_ code: StatusCode) -> Bool {
            [.unavailable, .internal, .cancelled, .deadlineExceeded, .unknown, .aborted].contains(code)
        }
    }
}

struct HealthCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "health", abstract: "The server's health (grpc.health.v1), overall or of one service; --watch follows it."
    )
    @OptionGroup var options: GlobalOptions
    @Argument(help: "A service name (default: the server as a whole).") var service = ""
    @Flag(help: "Print each change until Ctrl-C.") var watch = false

    func run() async throws {
        let context = try Context(options, needsToken: false)
        let printer = Printer(format: context.output)
        let request = Grpc_Health_V1_HealthCheckRequest.with { $0.service = service }
        try await context.withConnection { connection in
            if watch {
                try await connection.health.watch(request, options: .init(timeout: context.streamTimeout(default: .seconds(31_536_000)))) { response in
                    for try await status in response.messages { try Self.show(status, printer: printer, format: context.output) }
                }
            } else {
                try Self.show(try await connection.health.check(request), printer: printer, format: context.output)
            }
        }
    }

    static func show(_ response: Grpc_Health_V1_HealthCheckResponse, printer: Printer, format: OutputFormat) throws {
        guard format != .json else { return try printer.message(response) }
        let name = switch response.status {
        case .serving: "SERVING"
        case .notServing: "NOT_SERVING"
        case .serviceUnknown: "SERVICE_UNKNOWN"
        case .unknown: "UNKNOWN"
        case .unrecognized(let value): "STATUS_\(value)"
        }
        printer.line(name)
    }
}
