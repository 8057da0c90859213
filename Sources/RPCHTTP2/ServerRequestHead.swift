import RPCCore

/// A request's headers checked against the gRPC protocol, in grpc-go's order (`operateHeaders` in
/// internal/transport/http2_server.go): accepted, or the early-abort response to send instead. A value type
/// without I/O, so it is tested on its own.
struct ServerRequestHead {
    var method: String
    var path: String
    /// Where the method's name starts in `path` (after the second `/`).
    private var methodStart: String.Index
    var authority: String?
    var metadata: Metadata
    var timeout: Duration?
    /// The request's `grpc-encoding`; nil for identity.
    var encoding: MessageEncoding?
    /// The client's `grpc-accept-encoding`.
    var acceptEncoding: String?

    /// The service's full name, from `path` (`/service/method`); only unknown methods need it.
    var service: String { String(path[path.utf8.index(after: path.startIndex)..<path.utf8.index(before: methodStart)]) }
    var methodName: String { String(path[methodStart...]) }

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
        var authority: String?
        var authorities = 0
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
            case ":authority":
                authority = value
                authorities += 1
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
        if authorities > 1 || hosts > 1 {
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
        // Checked on the UTF-8 view: indexing by Character (grapheme breaking) showed in profiles.
        let slash = UInt8(ascii: "/")
        guard let path, path.utf8.first == slash, let second = path.utf8.dropFirst().firstIndex(of: slash),
              second > path.utf8.index(after: path.startIndex), path.utf8.index(after: second) < path.endIndex
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
            method: method, path: path, methodStart: path.utf8.index(after: second),
            authority: authority, metadata: metadata, timeout: parsedTimeout,
            encoding: messageEncoding, acceptEncoding: acceptEncoding
        ))
    }

    /// `application/grpc`, optionally followed by `+…` or `;…` (PROTOCOL-HTTP2.md, Content-Type); `application/grpc-web` is not gRPC.
    static func isGRPCContentType(_ value: String) -> Bool {
        // Bytes, as HTTP compares them (String's prefix and offset work on Characters, which showed in profiles).
        let prefix = "application/grpc".utf8
        guard value.utf8.starts(with: prefix) else { return false }
        let next = value.utf8.dropFirst(prefix.count).first
        return next == nil || next == UInt8(ascii: "+") || next == UInt8(ascii: ";")
    }
}
