import GatewayApplication
import Logging
import RPCCore

extension DomainError.Code {
    /// The one place where domain errors become gRPC status codes.
    var statusCode: StatusCode {
        switch self {
        case .invalidArgument: .invalidArgument
        case .notFound: .notFound
        case .alreadyExists: .alreadyExists
        case .versionConflict: .aborted
        case .permissionDenied: .permissionDenied
        case .failedPrecondition: .failedPrecondition
        case .resourceExhausted: .resourceExhausted
        case .unavailable: .unavailable
        }
    }
}

/// Ends calls that fail with a `DomainError` with the matching status and the error's message. Any other
/// failure of a use case (a storage error, a bug) is logged here and reported as `INTERNAL` without details,
/// so nothing about the storage leaks to callers.
public struct DomainStatusInterceptor: ServerInterceptor {
    private let logger: Logger

    public init(logger: Logger) {
        self.logger = logger
    }

    public func intercept(
        _ stream: RPCServerStream,
        context: ServerContext,
        next: @Sendable (RPCServerStream, ServerContext) async throws -> Void
    ) async throws {
        do {
            try await next(stream, context)
        } catch let error as DomainError {
            throw RPCError(code: error.code.statusCode, message: error.message, cause: error)
        } catch let error as RPCError {
            throw error
        } catch is CancellationError {
            throw CancellationError()
        } catch {
            logger.error("use case failed", metadata: ["rpc.method": "\(context.descriptor)", "error": "\(error)"])
            throw RPCError(code: .internal, message: "internal error", cause: error)
        }
    }
}
