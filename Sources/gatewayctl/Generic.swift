import ArgumentParser
import Foundation
import GatewayClient
import ProtoCodegen

/// `gatewayctl list [SERVICE]`: the server's services, or the methods of one, through server reflection.
struct ListCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "list", abstract: "The services of any server with reflection, or the methods of one service."
    )
    @OptionGroup var options: GlobalOptions
    @Argument(help: "A fully qualified service name, e.g. gateway.user.v1.UserService.") var service: String?

    func run() async throws {
        let context = try Context(options)
        let printer = Printer(format: context.output)
        let reflected = try await context.withConnection { try await Reflected.load(from: $0, symbols: service.map { [$0] } ?? []) }
        guard let service else {
            for name in reflected.services { printer.line(context.output == .json ? Self.json(["service": name]) : name) }
            return
        }
        guard case .service(let found) = reflected.symbol(service) else {
            throw UsageError("\(service) is not a service" + Reflected.hint(service, among: reflected.services))
        }
        for method in found.methods {
            let name = found.fullName + "." + method.name
            printer.line(context.output == .json ? Self.json(["method": name]) : name)
        }
    }

    static func json(_ object: [String: Any]) -> String {
        let data = (try? JSONSerialization.data(withJSONObject: object, options: [.sortedKeys, .withoutEscapingSlashes])) ?? Data()
        return String(decoding: data, as: UTF8.self)
    }
}

/// `gatewayctl describe SYMBOL`: a service, method, message or enum, written as `.proto` source.
struct DescribeCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "describe",
        abstract: "Describe a service, method, message or enum of any server with reflection (as .proto source).",
        discussion: "With --output json: one object with the symbol's kind and its methods, fields or values."
    )
    @OptionGroup var options: GlobalOptions
    @Argument(help: "A fully qualified name, e.g. gateway.user.v1.User or gateway.user.v1.UserService.GetUser.") var symbol: String

    func run() async throws {
        let context = try Context(options)
        let reflected = try await context.withConnection { try await Reflected.load(from: $0, symbols: [symbol]) }
        guard let found = reflected.symbol(symbol) else {
            throw UsageError("the server has no symbol \(symbol)" + Reflected.hint(symbol, among: reflected.services))
        }
        Printer(format: context.output).line(context.output == .json ? ListCommand.json(Self.object(found)) : Self.source(found))
    }

    static func source(_ symbol: Reflected.Symbol) -> String {
        switch symbol {
        case .service(let service):
            let methods = service.methods.map { "  " + rpc($0) }
            return (["service \(service.name) {"] + methods + ["}"]).joined(separator: "\n")
        case .method(_, let method):
            return rpc(method)
        case .message(let message, let syntax):
            var lines = ["message \(message.name) {"]
            var oneofsWritten: Set<Int> = []
            for field in message.fields {
                if let index = field.oneofIndex, !field.isProto3Optional {
                    guard oneofsWritten.insert(index).inserted else { continue }
                    lines.append("  oneof \(message.oneofs[index].name) {")
                    for member in message.fields where member.oneofIndex == index {
                        lines.append("    \(type(member, in: message)) \(member.name) = \(member.number);")
                    }
                    lines.append("  }")
                    continue
                }
                var label = ""
                if field.isRepeated, !isMap(field, in: message) {
                    label = "repeated "
                } else if field.isProto3Optional || (syntax == "proto2" && field.label == .optional) {
                    label = "optional "
                } else if field.label == .required {
                    label = "required "
                }
                lines.append("  \(label)\(type(field, in: message)) \(field.name) = \(field.number);")
            }
            return (lines + ["}"]).joined(separator: "\n")
        case .enum(let value):
            return (["enum \(value.name) {"] + value.values.map { "  \($0.name) = \($0.number);" } + ["}"]).joined(separator: "\n")
        }
    }

    static func rpc(_ method: ProtoCodegen.MethodDescriptor) -> String {
        let input = (method.clientStreaming ? "stream " : "") + method.inputType
        let output = (method.serverStreaming ? "stream " : "") + method.outputType
        return "rpc \(method.name) ( \(input) ) returns ( \(output) );"
    }

    static func isMap(_ field: ProtoCodegen.FieldDescriptor, in message: ProtoCodegen.MessageDescriptor) -> Bool {
        entry(of: field, in: message) != nil
    }

    /// The map entry type of a `map<K, V>` field (declared nested in the same message).
    static func entry(of field: ProtoCodegen.FieldDescriptor, in message: ProtoCodegen.MessageDescriptor) -> ProtoCodegen.MessageDescriptor? {
        guard field.isRepeated, field.kind == .message, let typeName = field.typeName else { return nil }
        return message.messages.first { "." + $0.fullName == typeName && $0.isMapEntry }
    }

    static func type(_ field: ProtoCodegen.FieldDescriptor, in message: ProtoCodegen.MessageDescriptor) -> String {
        if let entry = entry(of: field, in: message), entry.fields.count == 2 {
            return "map<\(type(entry.fields[0], in: entry)), \(type(entry.fields[1], in: entry))>"
        }
        if let typeName = field.typeName, field.kind == .message || field.kind == .enum { return typeName }
        return "\(field.kind)".replacingOccurrences(of: "`", with: "")
    }

    static func object(_ symbol: Reflected.Symbol) -> [String: Any] {
        func method(_ method: ProtoCodegen.MethodDescriptor, in service: String) -> [String: Any] {
            [
                "name": service + "." + method.name, "inputType": method.inputType, "outputType": method.outputType,
                "clientStreaming": method.clientStreaming, "serverStreaming": method.serverStreaming,
            ]
        }
        switch symbol {
        case .service(let service):
            return ["kind": "service", "name": service.fullName, "methods": service.methods.map { method($0, in: service.fullName) }]
        case .method(let service, let found):
            return ["kind": "method"].merging(method(found, in: service.fullName)) { $1 }
        case .message(let message, _):
            let fields: [[String: Any]] = message.fields.map { field in
                var object: [String: Any] = [
                    "name": field.name, "jsonName": field.jsonName, "number": field.number, "type": type(field, in: message),
                    "repeated": field.isRepeated && !isMap(field, in: message),
                ]
                if let index = field.oneofIndex, !field.isProto3Optional { object["oneof"] = message.oneofs[index].name }
                return object
            }
            return ["kind": "message", "name": message.fullName, "fields": fields]
        case .enum(let value):
            return ["kind": "enum", "name": value.fullName, "values": value.values.map { ["name": $0.name, "number": $0.number] }]
        }
    }
}

/// `gatewayctl call pkg.Service/Method -d JSON`: any method of any server with reflection.
struct CallCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "call",
        abstract: "Call any method of any server with reflection, with proto3 JSON in and out.",
        discussion: """
            The request is -d '{"field": "value"}', -d @file or -d - (stdin); without -d, an empty message (no \
            message for a client-streaming method). Client-streaming and bidirectional methods read one JSON \
            object per line, and every response is written as it arrives (one JSON object per line with \
            --output json). Malformed JSON, a field the message lacks, or an unknown service or method is \
            reported with exit code 2 before the method is called.
            """
    )
    @OptionGroup var options: GlobalOptions
    @Argument(help: "The method: pkg.Service/Method (or pkg.Service.Method).") var method: String
    @Option(name: [.customShort("d"), .customLong("data")], help: "Request JSON, @file, or - for stdin.") var data: String?

    func run() async throws {
        let context = try Context(options)
        let (serviceName, methodName) = try Self.split(method)
        // Everything local is read before the server is contacted.
        var input = try Self.input(data)
        let printer = Printer(format: context.output)
        try await context.withConnection { connection in
            let reflected = try await Reflected.load(from: connection, symbols: [serviceName])
            guard case .service(let service) = reflected.symbol(serviceName) else {
                throw UsageError("the server has no service \(serviceName)" + Reflected.hint(serviceName, among: reflected.services))
            }
            guard let found = service.methods.first(where: { $0.name == methodName }) else {
                let names = service.methods.map(\.name).joined(separator: ", ")
                throw UsageError("\(serviceName) has no method \(methodName) (its methods: \(names))")
            }
            let codec = DynamicCodec(schema: try reflected.schema())
            let inputType = String(found.inputType.drop { $0 == "." })
            let outputType = String(found.outputType.drop { $0 == "." })
            let encode: @Sendable (String, String) throws -> [UInt8] = { text, origin in
                try Self.encode(text, origin: origin, as: inputType, codec: codec)
            }
            // Requests given as text are checked, all of them, before the call.
            var requests: [[UInt8]] = []
            if case .text(let text, let origin) = input {
                let documents = found.clientStreaming ? Self.lines(text) : [(text, nil)]
                requests = try documents.map { document, line in
                    try encode(document, line.map { "\(origin) line \($0)" } ?? origin)
                }
                if !found.clientStreaming, requests.isEmpty { requests = [[]] }
            } else if case .stdin = input, !found.clientStreaming {
                let text = String(decoding: FileHandle.standardInput.readDataToEndOfFile(), as: UTF8.self)
                requests = [try encode(text, "stdin")]
                input = .none
            } else if case .none = input, !found.clientStreaming {
                requests = [[]]
            }
            let streamStdin = if case .stdin = input { true } else { false }
            let descriptor = RPCCore.MethodDescriptor(
                service: RPCCore.ServiceDescriptor(fullyQualifiedName: service.fullName), method: found.name,
                kind: found.clientStreaming
                    ? (found.serverStreaming ? .bidirectionalStreaming : .clientStreaming)
                    : (found.serverStreaming ? .serverStreaming : .unary)
            )
            let format = context.output
            try await connection.rpc.bidirectionalStreaming(
                descriptor: descriptor,
                encodedRequests: { [requests] writer in
                    for request in requests { try await writer.write(request) }
                    guard streamStdin else { return }
                    for await (line, number) in Self.stdinLines() where !line.allSatisfy(\.isWhitespace) {
                        try await writer.write(try encode(line, "stdin line \(number)"))
                    }
                },
                onResponse: { response in
                    for try await bytes in response.messages {
                        let json: String
                        do {
                            json = try codec.decode(bytes, as: outputType)
                        } catch {
                            throw RPCError(code: .internal, message: "failed to parse the response as \(outputType): \(error)")
                        }
                        printer.write(format == .json ? json : Printer.indented(json))
                    }
                }
            )
        }
    }

    enum Input: Sendable {
        case none
        case text(String, origin: String)
        case stdin
    }

    static func input(_ data: String?) throws -> Input {
        guard let data else { return .none }
        if data == "-" { return .stdin }
        guard data.hasPrefix("@") else { return .text(data, origin: "-d") }
        let path = String(data.dropFirst())
        guard let contents = FileManager.default.contents(atPath: path) else {
            throw LocalFailure("-d @\(path): no such file or not readable")
        }
        return .text(String(decoding: contents, as: UTF8.self), origin: path)
    }

    static func split(_ method: String) throws -> (service: String, method: String) {
        let separator = method.lastIndex(of: "/") ?? method.lastIndex(of: ".")
        guard let separator, separator != method.startIndex, method.index(after: separator) != method.endIndex else {
            throw UsageError("\(method) is not pkg.Service/Method")
        }
        let service = method[..<separator]
        return (String(service.hasPrefix("/") ? service.dropFirst() : service), String(method[method.index(after: separator)...]))
    }

    /// The non-blank lines of `text`, numbered from 1.
    static func lines(_ text: String) -> [(String, Int?)] {
        text.split(separator: "\n", omittingEmptySubsequences: false).enumerated().compactMap { index, line in
            line.allSatisfy(\.isWhitespace) ? nil : (String(line), index + 1)
        }
    }

    /// The encoded message for one JSON document, or a usage error saying where it is wrong.
    static func encode(_ text: String, origin: String, as typeName: String, codec: DynamicCodec) throws -> [UInt8] {
        let json: JSONValue
        do {
            json = try JSONParser.parse(text)
        } catch let error as JSONError {
            throw UsageError("\(origin): invalid JSON\(position(of: error.offset, in: text)): \(error.message)")
        }
        do {
            return try codec.encode(json: json, as: typeName)
        } catch {
            throw UsageError("\(origin): \(error)")
        }
    }

    /// ` at line L, column C` for a byte offset (columns count bytes, from 1).
    static func position(of offset: Int?, in text: String) -> String {
        guard let offset else { return "" }
        let before = text.utf8.prefix(offset)
        let line = before.count { $0 == UInt8(ascii: "\n") } + 1
        let column = offset - (before.lastIndex(of: UInt8(ascii: "\n")).map { before.distance(from: before.startIndex, to: $0) + 1 } ?? 0) + 1
        return " at line \(line), column \(column)"
    }

    /// Lines of stdin as they arrive, read on a thread of their own (a blocking read must not hold one of the
    /// few threads async tasks run on).
    static func stdinLines() -> AsyncStream<(String, Int)> {
        let (lines, sink) = AsyncStream.makeStream(of: (String, Int).self)
        Thread {
            var number = 0
            while let line = readLine(strippingNewline: true) {
                number += 1
                sink.yield((line, number))
            }
            sink.finish()
        }.start()
        return lines
    }
}
