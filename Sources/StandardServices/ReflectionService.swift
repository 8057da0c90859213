import ProtoRuntime
import RPCCore
import StandardProtos

/// gRPC server reflection (`doc/server-reflection.md`), under both `grpc.reflection.v1` and
/// `grpc.reflection.v1alpha` (clients use one or the other; the messages are the same on the wire).
/// Answers come from the descriptors embedded in the generated modules.
public struct ReflectionService: Sendable {
    private let index: DescriptorIndex
    private let services: [String]

    /// `services` are the fully qualified names of the services the server serves (the reflection
    /// service's own names are added); `files` must hold every file they are declared in and all imports.
    public init(services: [String], files: [ProtoFileDescriptor]) {
        self.services = (services + ["grpc.reflection.v1.ServerReflection", "grpc.reflection.v1alpha.ServerReflection"]).sorted()
        index = DescriptorIndex(files: files)
    }

    /// The two services to register with a server.
    public var rpcServices: [any RPCService] {
        [V1(reflection: self), V1Alpha(reflection: self)]
    }

    struct V1: Grpc_Reflection_V1_ServerReflection.ServiceProtocol {
        let reflection: ReflectionService

        func serverReflectionInfo(
            _ requests: RPCAsyncSequence<Grpc_Reflection_V1_ServerReflectionRequest>,
            responses: RPCWriter<Grpc_Reflection_V1_ServerReflectionResponse>,
            context: ServerContext
        ) async throws {
            var sent = Set<String>()
            for try await request in requests {
                try await responses.write(reflection.answer(request, alreadySent: &sent))
            }
        }
    }

    struct V1Alpha: Grpc_Reflection_V1alpha_ServerReflection.ServiceProtocol {
        let reflection: ReflectionService

        func serverReflectionInfo(
            _ requests: RPCAsyncSequence<Grpc_Reflection_V1alpha_ServerReflectionRequest>,
            responses: RPCWriter<Grpc_Reflection_V1alpha_ServerReflectionResponse>,
            context: ServerContext
        ) async throws {
            var sent = Set<String>()
            for try await request in requests {
                // Same wire format: translate through the bytes.
                let v1 = try Grpc_Reflection_V1_ServerReflectionRequest(serializedBytes: try request.serializedBytes())
                let answer = try reflection.answer(v1, alreadySent: &sent)
                try await responses.write(try .init(serializedBytes: try answer.serializedBytes()))
            }
        }
    }

    func answer(
        _ request: Grpc_Reflection_V1_ServerReflectionRequest,
        alreadySent sent: inout Set<String>
    ) throws -> Grpc_Reflection_V1_ServerReflectionResponse {
        var response = Grpc_Reflection_V1_ServerReflectionResponse()
        response.validHost = request.host
        response.originalRequest = request
        switch request.messageRequest {
        case .listServices?:
            response.messageResponse = .listServicesResponse(.with {
                $0.service = services.map { name in .with { $0.name = name } }
            })
        case .fileByFilename(let name)?:
            response.messageResponse = files(closureOf: index.file(named: name), notFound: "file \(name)", sent: &sent)
        case .fileContainingSymbol(let symbol)?:
            response.messageResponse = files(closureOf: index.file(declaring: symbol), notFound: "symbol \(symbol)", sent: &sent)
        case .fileContainingExtension(let e)?:
            response.messageResponse = error(.notFound, "no extension \(e.extensionNumber) of \(e.containingType)")
        case .allExtensionNumbersOfType(let type)?:
            if index.file(declaring: type) != nil {
                response.messageResponse = .allExtensionNumbersResponse(.with { $0.baseTypeName = type })
            } else {
                response.messageResponse = error(.notFound, "unknown type \(type)")
            }
        case nil:
            response.messageResponse = error(.invalidArgument, "empty request")
        }
        return response
    }

    /// The file and its transitive imports, leaving out what this stream already received.
    private func files(
        closureOf file: ProtoFileDescriptor?, notFound: String, sent: inout Set<String>
    ) -> Grpc_Reflection_V1_ServerReflectionResponse.OneOf_MessageResponse {
        guard let file else { return error(.notFound, "unknown \(notFound)") }
        var out: [[UInt8]] = []
        var stack = [file]
        var seen = Set<String>()
        while let f = stack.popLast() {
            guard seen.insert(f.name).inserted else { continue }
            // The requested file always goes out; its imports only if not sent before on this stream.
            if f.name == file.name || !sent.contains(f.name) { out.append(f.serialized) }
            sent.insert(f.name)
            stack += f.dependencies.compactMap(index.file(named:))
        }
        return .fileDescriptorResponse(.with { $0.fileDescriptorProto = out })
    }

    private func error(_ code: StatusCode, _ message: String) -> Grpc_Reflection_V1_ServerReflectionResponse.OneOf_MessageResponse {
        .errorResponse(.with {
            $0.errorCode = Int32(code.rawValue)
            $0.errorMessage = message
        })
    }
}

/// Files by name and by the symbols they declare.
struct DescriptorIndex: Sendable {
    private var byName: [String: ProtoFileDescriptor] = [:]
    private var bySymbol: [String: String] = [:]

    init(files: [ProtoFileDescriptor]) {
        for f in files {
            byName[f.name] = f
            for s in f.symbols { bySymbol[s] = f.name }
        }
    }

    func file(named name: String) -> ProtoFileDescriptor? { byName[name] }

    /// The file declaring a message, enum, service or method (a leading dot is allowed).
    func file(declaring symbol: String) -> ProtoFileDescriptor? {
        let name = symbol.hasPrefix(".") ? String(symbol.dropFirst()) : symbol
        return bySymbol[name].flatMap { byName[$0] }
    }
}
