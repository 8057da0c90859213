import ConformanceProtos
import GatewayProtos
import ProtoCodegen
import ProtoRuntime
import StandardProtos

/// The property the codec fuzzer checks on arbitrary bytes: decoding (binary or JSON) either throws or yields
/// a message that re-encodes stably. Anything else (a crash, a sanitizer report, a failed check) is a bug.
public enum CodecFuzzing {
    /// Message types under test, every request the gateway decodes among them; the input's first byte
    /// picks one. (Append new ones: the corpus files' first bytes select by position.)
    static let types: [any ProtoMessage.Type] = [
        Conformance_V1_AllTypes.self,
        Grpc_Testing_SimpleRequest.self,
        Grpc_Reflection_V1_ServerReflectionRequest.self,
        Gateway_User_V1_UpdateUserRequest.self,
        Gateway_File_V1_UploadFileRequest.self,
        Gateway_Event_V1_SubscribeRequest.self,
        Gateway_User_V1_CreateUserRequest.self,
        Gateway_User_V1_GetUserRequest.self,
        Gateway_User_V1_GetUserByEmailRequest.self,
        Gateway_User_V1_GetCurrentUserRequest.self,
        Gateway_User_V1_DeleteUserRequest.self,
        Gateway_User_V1_ListUsersRequest.self,
        Gateway_User_V1_CountUsersRequest.self,
        Gateway_User_V1_CreateSessionRequest.self,
        Gateway_User_V1_ListSessionsRequest.self,
        Gateway_User_V1_RevokeSessionRequest.self,
        Gateway_File_V1_DownloadFileRequest.self,
        Gateway_File_V1_GetFileInfoRequest.self,
        Gateway_File_V1_ListFilesRequest.self,
        Gateway_File_V1_DeleteFileRequest.self,
        Gateway_File_V1_GetDownloadUrlRequest.self,
        Gateway_Event_V1_PublishEventRequest.self,
        Gateway_Event_V1_PublishEventsRequest.self,
        Gateway_Event_V1_ListEventsRequest.self,
        Grpc_Health_V1_HealthCheckRequest.self,
    ]

    /// The codec for types learnt at run time (`gatewayctl call`), on the same schema as the generated code.
    static let dynamic: DynamicCodec = {
        let files = try! DescriptorSet(serialized: ConformanceProtosDescriptors.fileDescriptorSet).files
        return DynamicCodec(schema: try! DynamicSchema(files: files))
    }()

    public static func check(_ data: UnsafeRawBufferPointer) {
        guard let selector = data.first else { return }
        let type = types[Int(selector) % types.count]
        let payload = UnsafeRawBufferPointer(rebasing: data.dropFirst())
        if selector & 0x80 == 0 {
            checkBinary(type, payload)
        } else {
            checkJSON(type, Array(payload))
        }
    }

    private static func checkBinary<M: ProtoMessage>(_ type: M.Type, _ payload: UnsafeRawBufferPointer) {
        if M.self == Conformance_V1_AllTypes.self { checkDynamicBinary(payload) }
        guard let message = try? M(serializedBytes: payload) else { return }
        guard let first = try? message.serializedBytes() else {
            return  // only strings with U+0000 cannot be encoded
        }
        let second = try! M(serializedBytes: first).serializedBytes()
        precondition(first == second, "re-encoding \(M.protoMessageName) is not stable")
        if let json = try? message.jsonUTF8Bytes() {
            let back = try! M(jsonUTF8Bytes: json)
            precondition(try! back.jsonUTF8Bytes() == json, "JSON of \(M.protoMessageName) does not round-trip")
        }
    }

    private static func checkJSON<M: ProtoMessage>(_ type: M.Type, _ payload: [UInt8]) {
        if M.self == Conformance_V1_AllTypes.self { checkDynamicJSON(payload) }
        guard let message = try? M(jsonUTF8Bytes: payload), let json = try? message.jsonUTF8Bytes() else { return }
        let back = try! M(jsonUTF8Bytes: json)
        precondition(try! back.jsonUTF8Bytes() == json, "JSON of \(M.protoMessageName) does not round-trip")
        if let binary = try? message.serializedBytes() {
            precondition(try! M(serializedBytes: binary).serializedBytes() == binary, "binary of JSON input is not stable")
        }
    }

    /// What the dynamic codec decodes, the generated code reads the same way.
    private static func checkDynamicBinary(_ payload: UnsafeRawBufferPointer) {
        typealias AllTypes = Conformance_V1_AllTypes
        guard let json = try? dynamic.decode(Array(payload), as: AllTypes.protoMessageName),
              let generated = try? AllTypes(serializedBytes: payload), let expected = try? generated.jsonString()
        else { return }
        // Compared through the generated code, which writes fields in an order of its own.
        precondition(try! AllTypes(jsonString: json).jsonString() == expected, "the dynamic codec decodes AllTypes differently")
    }

    /// What the dynamic codec encodes from JSON, the generated code encodes the same.
    private static func checkDynamicJSON(_ payload: [UInt8]) {
        typealias AllTypes = Conformance_V1_AllTypes
        guard let json = try? JSONParser.parse(payload),
              let bytes = try? dynamic.encode(json: json, as: AllTypes.protoMessageName),
              let generated = try? AllTypes(jsonUTF8Bytes: payload), let expected = try? generated.serializedBytes()
        else { return }
        precondition(try! AllTypes(serializedBytes: bytes).serializedBytes() == expected, "the dynamic codec encodes AllTypes differently")
    }
}
