import RPCCore

/// A request's headers checked against the gRPC protocol, in grpc-go's order (`operateHeaders` in
/// internal/transport/http2_server.go): accepted, or the early-abort response to send instead. A value type
/// without I/O, so it is tested on its own.
struct ServerRequestHead {
    var method: String
    var path: String
    var service: String
    var methodName: String
    var authority: String?
    var metadata: Metadata
    var timeout: Duration?
    /// The request's `grpc-encoding`; nil for identity.
    var encoding: MessageEncoding?
    /// The client's `grpc-accept-encoding`.
    var acceptEncoding: String?

    /// An early abort: one HEADERS frame with END_STREAM carrying `:status`, `grpc-status`, `grpc-message`.
    struct Rejection: Error, Equatable {
        var httpStatus: Int
        var status: Status
        /// Unsupported `grpc-encoding`: the response lists what we accept (doc/compression.md).
        var listAcceptedEncodings = false
    }

    static func validate(_ headers: [(name: String, value: String)]) -> Result<ServerRequestHead, Rejection> {
        var method: String?
        var path: String?
        var authorities: [String] = []
        var hosts = 0
        var contentType: String?
        var timeout: String?
        var encoding: String?
        var acceptEncoding: String?
        var metadata = Metadata()
        var badBinaryHeader: String?
        for (name, value) in headers {
            switch name {
            case ":method": method = value
            case ":path": path = value
            case ":authority": authorities.append(value)
            case "host": hosts += 1
            case "content-type": contentType = value
            case "grpc-timeout": timeout = value
            case "grpc-encoding": encoding = value
            case "grpc-accept-encoding": acceptEncoding = value
            default:
                guard !MetadataCoding.isReserved(name) else { continue }
                do {
                    try MetadataCoding.add(name: name, value: value, to: &metadata)
                } catch {
                    badBinaryHeader = badBinaryHeader ?? name
                }
            }
        }
        // gRPC proposal A41: at most one :authority and one host
        if authorities.count > 1 || hosts > 1 {
            return .failure(Rejection(httpStatus: 400, status: Status(code: .internal, message: "more than one :authority or host header")))
        }
        // content-type: HTTP 415 (gRPC PROTOCOL-HTTP2.md, "Requests"), with grpc-go's status and message
        guard let contentType, isGRPCContentType(contentType) else {
            return .failure(Rejection(
                httpStatus: 415,
                status: Status(code: .invalidArgument, message: "invalid gRPC request content-type \"\(contentType ?? "")\"")
            ))
        }
        // grpc-timeout (gRPC PROTOCOL-HTTP2.md, "Requests") and -bin values: HTTP 400 + INTERNAL, as grpc-go
        var parsedTimeout: Duration?
        if let timeout {
            guard let t = GRPCTimeout.parse(timeout) else {
                return .failure(Rejection(httpStatus: 400, status: Status(code: .internal, message: "malformed grpc-timeout: \(timeout)")))
            }
            parsedTimeout = t
        }
        if let badBinaryHeader {
            return .failure(Rejection(
                httpStatus: 400, status: Status(code: .internal, message: "malformed binary metadata in header \(badBinaryHeader)")
            ))
        }
        // :method POST (gRPC PROTOCOL-HTTP2.md, "Requests"); HTTP 405 as grpc-go
        guard let method, method == "POST" else {
            return .failure(Rejection(
                httpStatus: 405,
                status: Status(code: .internal, message: "Received a HEADERS frame with :method \"\(method ?? "")\" which should be POST")
            ))
        }
        // `/service/method` (gRPC PROTOCOL-HTTP2.md, "Requests"); the message is grpc-go server.go's
        guard let path, path.hasPrefix("/"), let slash = path.dropFirst().firstIndex(of: "/"),
              slash > path.index(after: path.startIndex), path.index(after: slash) < path.endIndex
        else {
            return .failure(Rejection(httpStatus: 200, status: Status(code: .unimplemented, message: "malformed method name: \"\(path ?? "")\"")))
        }
        // grpc-encoding (grpc/grpc doc/compression.md): UNIMPLEMENTED for an unsupported one
        var messageEncoding: MessageEncoding?
        if let encoding, encoding != "identity" {
            guard let supported = MessageEncoding(rawValue: encoding) else {
                return .failure(Rejection(
                    httpStatus: 200,
                    status: Status(code: .unimplemented, message: "grpc-encoding \"\(encoding)\" is not supported"),
                    listAcceptedEncodings: true
                ))
            }
            messageEncoding = supported
        }
        return .success(ServerRequestHead(
            method: method, path: path,
            service: String(path[path.index(after: path.startIndex)..<slash]),
            methodName: String(path[path.index(after: slash)...]),
            authority: authorities.first, metadata: metadata, timeout: parsedTimeout,
            encoding: messageEncoding, acceptEncoding: acceptEncoding
        ))
    }

    /// `application/grpc`, optionally followed by `+…` or `;…` (PROTOCOL-HTTP2.md, Content-Type); `application/grpc-web` is not gRPC.
    static func isGRPCContentType(_ value: String) -> Bool {
        guard value.hasPrefix("application/grpc") else { return false }
        let rest = value.dropFirst("application/grpc".count)
        return rest.isEmpty || rest.hasPrefix("+") || rest.hasPrefix(";")
    }
}
