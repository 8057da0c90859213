/// A gRPC status code (grpc/grpc `doc/statuscodes.md`).
public struct StatusCode: RawRepresentable, Hashable, Sendable, CustomStringConvertible {
    public let rawValue: Int

    public init(rawValue: Int) {
        self.rawValue = rawValue
    }

    public static let ok = Self(rawValue: 0)
    public static let cancelled = Self(rawValue: 1)
    public static let unknown = Self(rawValue: 2)
    public static let invalidArgument = Self(rawValue: 3)
    public static let deadlineExceeded = Self(rawValue: 4)
    public static let notFound = Self(rawValue: 5)
    public static let alreadyExists = Self(rawValue: 6)
    public static let permissionDenied = Self(rawValue: 7)
    public static let resourceExhausted = Self(rawValue: 8)
    public static let failedPrecondition = Self(rawValue: 9)
    public static let aborted = Self(rawValue: 10)
    public static let outOfRange = Self(rawValue: 11)
    public static let unimplemented = Self(rawValue: 12)
    public static let `internal` = Self(rawValue: 13)
    public static let unavailable = Self(rawValue: 14)
    public static let dataLoss = Self(rawValue: 15)
    public static let unauthenticated = Self(rawValue: 16)

    private static let names = [
        "OK", "CANCELLED", "UNKNOWN", "INVALID_ARGUMENT", "DEADLINE_EXCEEDED", "NOT_FOUND", "ALREADY_EXISTS",
        "PERMISSION_DENIED", "RESOURCE_EXHAUSTED", "FAILED_PRECONDITION", "ABORTED", "OUT_OF_RANGE",
        "UNIMPLEMENTED", "INTERNAL", "UNAVAILABLE", "DATA_LOSS", "UNAUTHENTICATED",
    ]

    /// The canonical upper-case name, e.g. `NOT_FOUND`.
    public var description: String {
        Self.names.indices.contains(rawValue) ? Self.names[rawValue] : "CODE_\(rawValue)"
    }
}

/// The outcome of an RPC: a code and a human-readable message.
public struct Status: Hashable, Sendable, CustomStringConvertible {
    public var code: StatusCode
    public var message: String

    public init(code: StatusCode, message: String = "") {
        self.code = code
        self.message = message
    }

    public static let ok = Status(code: .ok)

    public var description: String {
        message.isEmpty ? "\(code)" : "\(code): \(message)"
    }
}

/// An RPC that ended with a status other than OK: thrown by handlers to choose the status, and by clients
/// when the server sent one.
/// The cause of the error that writing to a call's request stream throws once the call has ended. The call's
/// outcome is its status, which the response side reports; clients prefer that to the failed write.
public struct CallEndedError: Error, Sendable {
    public init() {}
}

public struct RPCError: Error, Sendable, CustomStringConvertible {
    public var code: StatusCode
    public var message: String
    /// Trailing metadata sent with the status.
    public var metadata: Metadata
    /// What caused it, for logs; never sent to the peer.
    public var cause: (any Error)?

    public init(code: StatusCode, message: String, metadata: Metadata = [:], cause: (any Error)? = nil) {
        precondition(code != .ok, "an RPCError cannot have status OK")
        self.code = code
        self.message = message
        self.metadata = metadata
        self.cause = cause
    }

    public var status: Status { Status(code: code, message: message) }

    public var description: String {
        "\(code): \(message)"
    }

    /// The error a call ends with when its handler throws `error` (grpc/grpc doc/statuscodes.md): an
    /// `RPCError` as it is; CANCELLED for a cancelled task; UNKNOWN for anything else, whose description is
    /// for the server's log only (`cause`), never for the peer. Every transport and interceptor maps with this.
    public init(handlerError error: any Error) {
        switch error {
        case let error as RPCError: self = error
        case is CancellationError: self.init(code: .cancelled, message: "the call was cancelled", cause: error)
        default: self.init(code: .unknown, message: "the handler failed", cause: error)
        }
    }
}

extension Status {
    /// Request text (a method or service name, a field) as a status message may echo it: whole when short,
    /// else its first `limit` UTF-8 bytes (whole scalars) and "…", so a 16 KiB path does not come back whole.
    public static func excerpt(_ text: some StringProtocol, limit: Int = 100) -> String {
        guard text.utf8.count > limit else { return String(text) }
        var kept = String.UnicodeScalarView()
        var bytes = 0
        for scalar in text.unicodeScalars {
            bytes += UTF8.width(scalar)
            if bytes > limit { break }
            kept.append(scalar)
        }
        return String(kept) + "…"
    }
}
