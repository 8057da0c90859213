import GatewayClient
import ProtoCodegen

/// What a server says about itself through gRPC server reflection
/// (https://github.com/grpc/grpc/blob/master/doc/server-reflection.md): its services, and the `.proto` files
/// that define the symbols asked for, with everything they import.
struct Reflected: Sendable {
    var services: [String]
    var files: [String: ProtoCodegen.FileDescriptor]

    /// Asks `connection` for its services and for the files of `symbols`. Tries `grpc.reflection.v1`, then the
    /// older `grpc.reflection.v1alpha` (the same messages under another name) when the server lacks v1.
    static func load(from connection: GatewayConnection, symbols: [String]) async throws -> Reflected {
        do {
            return try await load(from: connection, symbols: symbols, method: Grpc_Reflection_V1_ServerReflection.Method.serverReflectionInfo)
        } catch let error as RPCError where error.code == .unimplemented {
            let v1alpha = RPCCore.MethodDescriptor(
                service: RPCCore.ServiceDescriptor(fullyQualifiedName: "grpc.reflection.v1alpha.ServerReflection"),
                method: "ServerReflectionInfo", kind: .bidirectionalStreaming
            )
            do {
                return try await load(from: connection, symbols: symbols, method: v1alpha)
            } catch let alpha as RPCError where alpha.code == .unimplemented {
                throw RPCError(code: .unimplemented, message: "the server does not offer server reflection (grpc.reflection.v1 or v1alpha)")
            }
        }
    }

    private static func load(from connection: GatewayConnection, symbols: [String], method: RPCCore.MethodDescriptor) async throws -> Reflected {
        let (requests, sender) = AsyncStream.makeStream(of: Grpc_Reflection_V1_ServerReflectionRequest.self)
        // The first request goes out with the call: servers may hold their response headers until it arrives,
        // and the response side starts only once they are in.
        sender.yield(.with { $0.messageRequest = .listServices("*") })
        return try await connection.rpc.bidirectionalStreaming(
            descriptor: method,
            requests: { writer in
                for await request in requests { try await writer.write(request) }
            },
            onResponse: { (response: StreamingClientResponse<Grpc_Reflection_V1_ServerReflectionResponse>) in
                defer { sender.finish() }
                let exchange = Exchange(sender: sender, responses: response.messages.makeAsyncIterator())
                var reflected = Reflected(services: [], files: [:])
                guard case .listServicesResponse(let list) = try await exchange.answer() else {
                    throw RPCError(code: .internal, message: "the server answered list_services with something else")
                }
                reflected.services = list.service.map(\.name).sorted()
                for symbol in symbols {
                    var answer = try await exchange.ask(.fileContainingSymbol(symbol))
                    // Some servers (Python's) do not look up methods: ask for the service then.
                    if case .errorResponse(let error) = answer, error.errorCode == StatusCode.notFound.rawValue,
                       let dot = symbol.lastIndex(of: ".") {
                        let parent = try await exchange.ask(.fileContainingSymbol(String(symbol[..<dot])))
                        if case .fileDescriptorResponse = parent { answer = parent }
                    }
                    try await reflected.addFiles(answer, asked: symbol, exchange: exchange)
                }
                return reflected
            }
        )
    }

    /// Adds the files of a response, then asks for each import not seen yet.
    private mutating func addFiles(
        _ response: Grpc_Reflection_V1_ServerReflectionResponse.OneOf_MessageResponse, asked: String, exchange: Exchange
    ) async throws {
        switch response {
        case .fileDescriptorResponse(let found):
            var missing: [String] = []
            for bytes in found.fileDescriptorProto {
                let file: ProtoCodegen.FileDescriptor
                do {
                    file = try ProtoCodegen.FileDescriptor(serialized: bytes)
                } catch {
                    throw RPCError(code: .internal, message: "the server's descriptor for \(asked) is malformed")
                }
                files[file.name] = file
                missing += file.dependencies
            }
            while let name = missing.popLast() {
                guard files[name] == nil else { continue }
                guard case .fileDescriptorResponse(let more) = try await exchange.ask(.fileByFilename(name)) else {
                    throw UsageError("the server has no file \(name), which \(asked) needs")
                }
                for bytes in more.fileDescriptorProto {
                    guard let file = try? ProtoCodegen.FileDescriptor(serialized: bytes) else {
                        throw RPCError(code: .internal, message: "the server's descriptor of \(name) is malformed")
                    }
                    if files[file.name] == nil {
                        files[file.name] = file
                        missing += file.dependencies
                    }
                }
            }
        case .errorResponse(let error) where error.errorCode == StatusCode.notFound.rawValue:
            throw UsageError("the server has no symbol \(asked)" + Self.hint(asked, among: services))
        case .errorResponse(let error):
            throw RPCError(code: StatusCode(rawValue: Int(error.errorCode)), message: error.errorMessage)
        default:
            throw RPCError(code: .internal, message: "the server answered file_containing_symbol with something else")
        }
    }

    static func hint(_ name: String, among services: [String]) -> String {
        services.isEmpty ? "" : " (its services: \(services.joined(separator: ", ")))"
    }

    /// One request, then its response, on the reflection stream.
    private final class Exchange: @unchecked Sendable {
        // Used by the one task that runs `onResponse`.
        let sender: AsyncStream<Grpc_Reflection_V1_ServerReflectionRequest>.Continuation
        var responses: RPCAsyncSequence<Grpc_Reflection_V1_ServerReflectionResponse>.AsyncIterator

        init(
            sender: AsyncStream<Grpc_Reflection_V1_ServerReflectionRequest>.Continuation,
            responses: RPCAsyncSequence<Grpc_Reflection_V1_ServerReflectionResponse>.AsyncIterator
        ) {
            self.sender = sender
            self.responses = responses
        }

        func ask(
            _ request: Grpc_Reflection_V1_ServerReflectionRequest.OneOf_MessageRequest
        ) async throws -> Grpc_Reflection_V1_ServerReflectionResponse.OneOf_MessageResponse {
            sender.yield(.with { $0.messageRequest = request })
            return try await answer()
        }

        /// The response to the request sent last.
        func answer() async throws -> Grpc_Reflection_V1_ServerReflectionResponse.OneOf_MessageResponse {
            guard let response = try await responses.next() else {
                throw RPCError(code: .internal, message: "the reflection stream ended before the server answered")
            }
            guard let answer = response.messageResponse else {
                throw RPCError(code: .internal, message: "the server sent an empty reflection response")
            }
            return answer
        }
    }

    // MARK: Symbols

    /// What a fully qualified name stands for in the loaded files.
    enum Symbol {
        case service(ProtoCodegen.ServiceDescriptor)
        case method(ProtoCodegen.ServiceDescriptor, ProtoCodegen.MethodDescriptor)
        case message(ProtoCodegen.MessageDescriptor, syntax: String)
        case `enum`(ProtoCodegen.EnumDescriptor)
    }

    func symbol(_ name: String) -> Symbol? {
        let name = name.hasPrefix(".") ? String(name.dropFirst()) : name
        for file in files.values {
            for service in file.services {
                if service.fullName == name { return .service(service) }
                if let method = service.methods.first(where: { service.fullName + "." + $0.name == name }) {
                    return .method(service, method)
                }
            }
        }
        for file in files.values {
            var messages = file.messages
            var enums = file.enums
            while let message = messages.popLast() {
                if message.fullName == name { return .message(message, syntax: file.syntax) }
                messages += message.messages
                enums += message.enums
            }
            if let found = enums.first(where: { $0.fullName == name }) { return .enum(found) }
        }
        return nil
    }

    /// The loaded types in the form the dynamic codec takes.
    func schema() throws -> DynamicSchema {
        do {
            return try DynamicSchema(files: Array(files.values))
        } catch {
            throw UsageError("the server's schema cannot be used: \(error)")
        }
    }
}
