/// Generates, for one service, a namespace with its descriptors, the protocol a server implements and a client.
struct ServiceGenerator {
    let service: ServiceDescriptor
    let swiftName: String
    let table: TypeTable

    init(_ service: ServiceDescriptor, file: FileDescriptor, table: TypeTable) throws {
        self.service = service
        self.table = table
        swiftName = SwiftNaming.typePrefix(package: file.package, swiftPrefix: file.swiftPrefix) + service.name
        if table.entries.values.contains(where: { $0.swiftName == swiftName }) {
            throw CodegenError("\(service.fullName): its Swift name \(swiftName) is taken by a message or enum")
        }
    }

    private struct Method {
        let descriptor: MethodDescriptor
        let swiftName: String
        let input: String
        let output: String
        var kind: String {
            switch (descriptor.clientStreaming, descriptor.serverStreaming) {
            case (false, false): "unary"
            case (true, false): "clientStreaming"
            case (false, true): "serverStreaming"
            case (true, true): "bidirectionalStreaming"
            }
        }
    }

    private func methods() throws -> [Method] {
        try service.methods.map { m in
            Method(
                descriptor: m,
                swiftName: SwiftNaming.quoted(SwiftNaming.lowerCamel(m.name)),
                input: try table.entry(m.inputType).swiftName,
                output: try table.entry(m.outputType).swiftName
            )
        }
    }

    func generate(_ w: inout CodeWriter) throws {
        let methods = try methods()
        w.line("/// The `\(service.fullName)` service: descriptors, the protocol a server implements, and a client.")
        w.block("public enum \(swiftName)") { w in
            w.line("public static let descriptor = ServiceDescriptor(fullyQualifiedName: \"\(service.fullName)\")")
            w.line()
            w.block("public enum Method") { w in
                for m in methods {
                    w.line("public static let \(m.swiftName) = MethodDescriptor(service: \(swiftName).descriptor, method: \"\(m.descriptor.name)\", kind: .\(m.kind))")
                }
                w.line("public static let all: [MethodDescriptor] = [\(methods.map(\.swiftName).joined(separator: ", "))]")
            }
            w.line()
            w.line("/// Implement this to serve `\(service.fullName)`; throw an `RPCError` to end a call with a status.")
            w.block("public protocol ServiceProtocol: RPCService") { w in
                for m in methods { w.line(requirement(m)) }
            }
            w.line()
            w.line("/// Calls `\(service.fullName)` through an `RPCClient`.")
            w.block("public struct Client: Sendable") { w in
                w.line("public let client: RPCClient")
                w.line()
                w.line("public init(_ client: RPCClient) {")
                w.line("    self.client = client")
                w.line("}")
                for m in methods {
                    w.line()
                    clientMethod(m, &w)
                }
            }
        }
        w.line()
        w.block("extension \(swiftName).ServiceProtocol") { w in
            w.block("public func registerMethods(with router: inout RPCRouter)") { w in
                for m in methods {
                    let call = switch m.kind {
                    case "unary", "clientStreaming": "try await self.\(m.swiftName)($0, context: $1)"
                    default: "try await self.\(m.swiftName)($0, responses: $1, context: $2)"
                    }
                    w.line("router.\(m.kind)(\(swiftName).Method.\(m.swiftName)) { \(call) }")
                }
            }
        }
    }

    private func requirement(_ m: Method) -> String {
        let name = m.swiftName
        return switch m.kind {
        case "unary":
            "func \(name)(_ request: \(m.input), context: ServerContext) async throws -> \(m.output)"
        case "clientStreaming":
            "func \(name)(_ requests: RPCAsyncSequence<\(m.input)>, context: ServerContext) async throws -> \(m.output)"
        case "serverStreaming":
            "func \(name)(_ request: \(m.input), responses: RPCWriter<\(m.output)>, context: ServerContext) async throws"
        default:
            "func \(name)(_ requests: RPCAsyncSequence<\(m.input)>, responses: RPCWriter<\(m.output)>, context: ServerContext) async throws"
        }
    }

    private func clientMethod(_ m: Method, _ w: inout CodeWriter) {
        let descriptor = "\(swiftName).Method.\(m.swiftName)"
        let common = "metadata: Metadata = [:], options: CallOptions = .defaults"
        let requests = "requests: @escaping @Sendable (RPCWriter<\(m.input)>) async throws -> Void"
        let onResponse = "onResponse: @escaping @Sendable (StreamingClientResponse<\(m.output)>) async throws -> Result"
        switch m.kind {
        case "unary":
            w.block("public func \(m.swiftName)(_ request: \(m.input), \(common)) async throws -> \(m.output)") { w in
                w.line("try await client.unary(request: request, descriptor: \(descriptor), metadata: metadata, options: options).message")
            }
        case "clientStreaming":
            w.block("public func \(m.swiftName)(\(common), \(requests)) async throws -> \(m.output)") { w in
                w.line("try await client.clientStreaming(descriptor: \(descriptor), metadata: metadata, options: options, requests: requests).message")
            }
        case "serverStreaming":
            w.block("public func \(m.swiftName)<Result: Sendable>(_ request: \(m.input), \(common), \(onResponse)) async throws -> Result") { w in
                w.line("try await client.serverStreaming(request: request, descriptor: \(descriptor), metadata: metadata, options: options, onResponse: onResponse)")
            }
        default:
            w.block("public func \(m.swiftName)<Result: Sendable>(\(common), \(requests), \(onResponse)) async throws -> Result") { w in
                w.line("try await client.bidirectionalStreaming(descriptor: \(descriptor), metadata: metadata, options: options, requests: requests, onResponse: onResponse)")
            }
        }
    }
}
