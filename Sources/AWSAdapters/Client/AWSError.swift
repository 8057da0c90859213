import GatewayApplication
import ProtoRuntime

/// A request to AWS that failed: an error reply (with its code, e.g. `ConditionalCheckFailedException`), no
/// reply at all, or a refusal to try (open circuit, exhausted retry budget). Messages carry no secret.
public struct AWSError: Error, Sendable, CustomStringConvertible {
    public enum Kind: Sendable, Hashable {
        /// The service answered with an error (`status`, `code`).
        case reply
        /// No usable reply: no connection, a timeout, a broken transfer.
        case transport
        /// Not sent: the endpoint's circuit is open after consecutive failures.
        case circuitOpen
        /// Credentials could not be had.
        case credentials
    }

    public var kind: Kind
    /// `dynamodb`, `s3`, `sns`, `sts`.
    public var service: String
    public var operation: String
    /// The HTTP status of an error reply.
    public var status: Int?
    /// The error code, without namespace (`ThrottlingException`, `NoSuchKey`, `SignatureDoesNotMatch`).
    public var code: String
    public var message: String
    public var requestID: String?
    /// The whole reply body of a `reply` error (DynamoDB's `CancellationReasons` live there).
    var body: [UInt8] = []
    /// How long the reply asked to wait before trying again (`x-amz-retry-after` in milliseconds, or
    /// `Retry-After` in seconds).
    var retryAfter: Duration?

    init(kind: Kind, service: String, operation: String, status: Int? = nil, code: String, message: String, requestID: String? = nil) {
        self.kind = kind
        self.service = service
        self.operation = operation
        self.status = status
        self.code = code
        self.message = message
        self.requestID = requestID
    }

    public var description: String {
        var text = "\(service) \(operation): \(code)"
        if let status { text += " (HTTP \(status))" }
        if !message.isEmpty { text += ": \(message)" }
        if let requestID { text += " [request \(requestID)]" }
        return text
    }

    /// The reply says the request's signature or access key was refused: retrying cannot help.
    public var isAuthenticationFailure: Bool {
        kind == .reply && Self.authenticationCodes.contains(code)
    }

    static let authenticationCodes: Set<String> = [
        "SignatureDoesNotMatch", "InvalidAccessKeyId", "InvalidClientTokenId", "UnrecognizedClientException",
        "InvalidSignatureException", "IncompleteSignature", "MissingAuthenticationToken", "ExpiredToken",
        "ExpiredTokenException", "AccessDenied", "AccessDeniedException", "RequestExpired", "RequestTimeTooSkewed",
        "AuthFailure", "InvalidToken",
    ]

    /// What the caller of an RPC sees when storage fails this way: `UNAVAILABLE` (the store cannot be used
    /// right now, whatever the reason) with a message that names the cause and never a secret.
    public var domainError: DomainError {
        switch kind {
        case .circuitOpen, .credentials:
            DomainError(.unavailable, "storage is unavailable: \(message)")
        case .transport:
            DomainError(.unavailable, "storage is unavailable: \(service) \(operation) failed: \(message)")
        case .reply where isAuthenticationFailure:
            DomainError(.unavailable, "storage refused the gateway's AWS credentials (\(service) \(code)); the operator must fix them")
        case .reply:
            DomainError(.unavailable, "storage is unavailable: \(service) \(operation) answered \(code)")
        }
    }

    // MARK: Reading error replies

    /// Reads an error reply of any of the three protocols: AWS JSON (`__type`, `X-Amzn-Errortype`), S3's
    /// `<Error>` and the Query protocol's `<ErrorResponse>` (which moto also uses for DynamoDB's
    /// authentication errors).
    static func parse(service: String, operation: String, response: HTTPResponse) -> AWSError {
        var code = ""
        var message = ""
        var requestID = response.header("x-amzn-requestid") ?? response.header("x-amz-request-id")
        if let header = response.header("x-amzn-errortype") {
            code = header
        }
        let body = response.body
        if let first = body.first(where: { $0 != 0x20 && $0 != 0x0A && $0 != 0x0D && $0 != 0x09 }) {
            if first == UInt8(ascii: "{"), case .object(let object)? = try? JSONParser.parse(body, maxDepth: 32) {
                if code.isEmpty, case .string(let type)? = object["__type"] ?? object["code"] ?? object["Code"] { code = type }
                for entry in object.entries where entry.key.lowercased() == "message" {
                    if case .string(let text) = entry.value { message = text }
                }
            } else if first == UInt8(ascii: "<"), let document = try? XMLDocument(parsing: body) {
                let error = document.root.name == "Error" ? document.root : document.root.child("Error")
                if code.isEmpty { code = error?.text(at: "Code") ?? "" }
                message = error?.text(at: "Message") ?? ""
                requestID = requestID ?? document.root.text(at: "RequestId") ?? error?.text(at: "RequestId")
            }
        }
        // Smithy awsJson1_0: keep what follows the first `#`, drop anything from the first `:`.
        if let hash = code.firstIndex(of: "#") { code = String(code[code.index(after: hash)...]) }
        if let colon = code.firstIndex(of: ":") { code = String(code[..<colon]) }
        if code.isEmpty {
            // HEAD replies and some gateways have no body: the status is all there is.
            code = switch response.status {
            case 400: "BadRequest"
            case 403: "AccessDenied"
            case 404: "NotFound"
            case 412: "PreconditionFailed"
            case 500: "InternalError"
            case 503: "ServiceUnavailable"
            default: "HTTP\(response.status)"
            }
        }
        var error = AWSError(
            kind: .reply, service: service, operation: operation, status: response.status, code: code,
            message: String(message.prefix(500)), requestID: requestID
        )
        error.body = body
        if let milliseconds = response.header("x-amz-retry-after").flatMap(Int.init), milliseconds >= 0 {
            error.retryAfter = .milliseconds(milliseconds)
        } else if let seconds = response.header("retry-after").flatMap(Int.init), seconds >= 0 {
            error.retryAfter = .seconds(seconds)
        }
        return error
    }
}
