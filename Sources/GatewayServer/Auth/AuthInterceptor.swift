import GatewayApplication
import RPCCore

/// The verified caller of an RPC, attached to ``ServerContext/values`` by ``AuthInterceptor``.
public enum PrincipalKey: ContextValueKey {
    public typealias Value = Principal
}

extension ServerContext {
    /// The caller, when the method's policy required a token.
    public var principal: Principal? { values[PrincipalKey.self] }
}

/// Verifies the caller's credential on every RPC the ``AccessPolicy`` protects and attaches the
/// ``Principal`` to the context, so unary and streaming handlers alike see it.
///
/// Credentials: `authorization: Bearer <Firebase ID token>` (the scheme is case-insensitive), or a Firebase
/// session cookie as `cookie: session=<cookie>` metadata, or, with neither, a verified TLS client certificate
/// that the policy names (``AccessPolicy/certificateServices``): a backend service, with an admin's rights. Failures are `UNAUTHENTICATED` with a short message
/// saying which check failed (never the token); a tenant outside the allow-list or a missing `admin` claim is
/// `PERMISSION_DENIED`; signing keys that cannot be had are `UNAVAILABLE`.
public struct AuthInterceptor: ServerInterceptor {
    private let verifier: any TokenVerifier
    private let policy: AccessPolicy

    public init(verifier: any TokenVerifier, policy: AccessPolicy = .gateway) {
        self.verifier = verifier
        self.policy = policy
    }

    public func intercept(
        _ stream: RPCServerStream,
        context: ServerContext,
        next: @Sendable (RPCServerStream, ServerContext) async throws -> Void
    ) async throws {
        let rule = policy.rule(for: context.descriptor)
        guard rule.access != .public else {
            return try await next(stream, context)
        }
        let principal = try await authenticate(context)
        if rule.access == .admin && !principal.isAdmin {
            throw RPCError(code: .permissionDenied, message: "\(context.descriptor.method) requires the \"admin\" claim")
        }
        if rule.requiresVerifiedEmail && !principal.emailVerified {
            throw RPCError(code: .permissionDenied, message: "\(context.descriptor.method) requires a verified email address")
        }
        var context = context
        context.values[PrincipalKey.self] = principal
        try await next(stream, context)
    }

    private func authenticate(_ context: ServerContext) async throws(RPCError) -> Principal {
        let token: String, kind: TokenKind
        do {
            (token, kind) = try Self.credential(in: context.requestMetadata)
        } catch {
            if let certificate = context.clientCertificate, let service = policy.service(for: certificate) {
                return Principal(uid: service, isAdmin: true, expiresAt: .max, kind: .clientCertificate)
            }
            context.values[RPCObservationKey.self]?.credentialRefusal = "noCredential"
            throw error
        }
        do {
            return try await verifier.verify(token, kind: kind)
        } catch {
            // The call's own log line says why (`auth.refused`): one line per refused call, not two, so a flood
            // of bad tokens costs the log no more than a flood of good ones.
            context.values[RPCObservationKey.self]?.credentialRefusal = error.reason.rawValue
            throw RPCError(code: Self.statusCode(for: error.reason), message: error.message)
        }
    }

    /// The credential and its kind, from the request metadata.
    static func credential(in metadata: Metadata) throws(RPCError) -> (String, TokenKind) {
        let authorizations = metadata[stringValues: "authorization"]
        if authorizations.count > 1 {
            throw RPCError(code: .unauthenticated, message: "more than one \"authorization\" metadata entry")
        }
        if let authorization = authorizations.first {
            return (try bearerToken(authorization), .idToken)
        }
        if let cookie = sessionCookie(in: metadata[stringValues: "cookie"]) {
            return (cookie, .sessionCookie)
        }
        throw RPCError(code: .unauthenticated, message: "missing \"authorization\" metadata; expected \"Bearer <Firebase ID token>\"")
    }

    /// `Bearer <token>`: scheme case-insensitive (RFC 7235 §2.1), one or more spaces, then the token.
    static func bearerToken(_ value: String) throws(RPCError) -> String {
        // On the UTF-8 bytes: the token is some 800 of them, and Character-wise or Foundation's substring
        // searches over it were a tenth of an authenticated call's CPU.
        var value = value
        let token = value.withUTF8 { bytes -> String? in
            let space = UInt8(ascii: " ")
            guard let end = bytes.firstIndex(of: space), end == 6,
                  zip(bytes[..<end], "bearer".utf8).allSatisfy({ $0 | 0x20 == $1 })
            else { return nil }
            var start = end
            while start < bytes.count, bytes[start] == space { start += 1 }
            let token = UnsafeBufferPointer(rebasing: bytes[start...])
            guard !token.isEmpty, !token.contains(space) else { return nil }
            return String(decoding: token, as: UTF8.self)
        }
        guard let token else {
            throw RPCError(code: .unauthenticated, message: "\"authorization\" metadata must be \"Bearer <Firebase ID token>\"")
        }
        return token
    }

    /// The `session` cookie from `cookie` metadata (`name=value` pairs separated by `;`).
    static func sessionCookie(in headers: [String]) -> String? {
        for header in headers {
            for pair in header.split(separator: ";") {
                let trimmed = pair.drop { $0 == " " }
                if trimmed.hasPrefix("session="), trimmed.count > "session=".count {
                    return String(trimmed.dropFirst("session=".count))
                }
            }
        }
        return nil
    }

    /// The status a refused credential gets.
    public static func statusCode(for reason: TokenVerificationError.Reason) -> StatusCode {
        switch reason {
        case .keysUnavailable, .revocationCheckUnavailable: .unavailable
        case .tenantNotAllowed: .permissionDenied
        default: .unauthenticated
        }
    }
}
