import RPCCore

/// Who may call what: one table for the whole gateway. A method not named here needs a valid token.
public struct AccessPolicy: Sendable {
    public enum Access: Sendable, Hashable {
        /// No token needed (health, reflection, the interop test services).
        case `public`
        /// A valid ID token or session cookie.
        case authenticated
        /// A valid token with the `admin` custom claim.
        case admin
    }

    public struct Rule: Sendable, Hashable {
        public var access: Access
        /// The token must say `email_verified: true`.
        public var requiresVerifiedEmail: Bool

        public init(_ access: Access, requiresVerifiedEmail: Bool = false) {
            self.access = access
            self.requiresVerifiedEmail = requiresVerifiedEmail
        }
    }

    /// Callers admitted without a token by their verified client certificate (mutual TLS), as service
    /// principals with the rights of an administrator. Each entry names one identity, matched exactly and with
    /// its type: `URI:…`, `DNS:…`, `email:…`, `IP:…` or `subject:…` (RFC 2253); without a type, an entry with
    /// `://` is a URI SAN (`spiffe://example.org/payments`), one with `=` a subject (`CN=payments,O=Example`),
    /// anything else a DNS SAN (`payments.internal`).
    public var certificateServices: Set<String> = []

    /// Rules by fully qualified service name (`method` nil: every method of it), most specific first.
    private var services: [String: Rule] = [:]
    private var methods: [String: Rule] = [:]
    public var defaultRule: Rule

    public init(default defaultRule: Rule = Rule(.authenticated)) {
        self.defaultRule = defaultRule
    }

    public mutating func set(_ rule: Rule, service: String, method: String? = nil) {
        if let method { methods["\(service)/\(method)"] = rule } else { services[service] = rule }
    }

    /// The configured identity a verified client certificate carries, if any.
    public func service(for certificate: ClientCertificate) -> String? {
        guard !certificateServices.isEmpty else { return nil }
        let identities = Set(certificate.subjectAlternativeNames + ["subject:" + certificate.subject])
        return certificateServices.sorted().first { identities.contains(Self.typed($0)) }
    }

    /// A configured entry in the form the certificate's identities take (`TYPE:value`).
    static func typed(_ entry: String) -> String {
        if ["URI:", "DNS:", "email:", "IP:", "subject:"].contains(where: entry.hasPrefix) { return entry }
        if entry.contains("://") { return "URI:" + entry }
        if entry.contains("=") { return "subject:" + entry }
        return "DNS:" + entry
    }

    public func rule(for method: MethodDescriptor) -> Rule {
        methods[method.description] ?? services[method.service.fullyQualifiedName] ?? defaultRule
    }

    /// The gateway's policy.
    public static let gateway: AccessPolicy = {
        var policy = AccessPolicy(default: Rule(.authenticated))
        for service in [
            "grpc.health.v1.Health",
            "grpc.reflection.v1.ServerReflection",
            "grpc.reflection.v1alpha.ServerReflection",
            "grpc.testing.TestService",
            "grpc.testing.BenchmarkService",
        ] {
            policy.set(Rule(.public), service: service)
        }
        // Listing and counting every user is for administrators; everything else acts on the caller's own
        // records, which the use cases enforce.
        policy.set(Rule(.admin), service: "gateway.user.v1.UserService", method: "ListUsers")
        policy.set(Rule(.admin), service: "gateway.user.v1.UserService", method: "CountUsers")
        return policy
    }()
}
