import Logging
import Metrics
import GatewayApplication
import OpenSSLTLS

/// The listener's TLS: credentials loaded from the settings' files, reloaded on demand (SIGHUP), with the
/// handshake and certificate metrics and the expiry warning.
///
/// Metrics: `tls_server_handshakes_total{result="ok"|"failed", version}` and
/// `tls_server_certificate_expiry_timestamp_seconds` (the certificate's notAfter, for alerts such as
/// `… - time() < 14 * 86400`).
public struct GatewayTLS: Sendable {
    public let credentials: TLSServerCredentials
    private let logger: Logger
    private let expiry: Gauge

    /// How close to its end a certificate is reported with a warning, at start and at each reload.
    public static let expiryWarning: Int64 = 14 * 86_400

    /// nil without a certificate; a ``ConfigurationError`` naming the file and the reason when one does not load.
    public init?(settings: GatewaySettings.TLS, logger: Logger, factory: any MetricsFactory = MetricsSystem.factory) throws(ConfigurationError) {
        guard let configuration = settings.server else { return nil }
        let handshakes = HandshakeCounters(factory: factory)
        do {
            credentials = try TLSServerCredentials(configuration) { handshakes.count($0) }
        } catch {
            // The setting whose file is at fault.
            let file = (error as? TLSConfigurationError)?.file
            let key = file == settings.keyFile ? "tls.key_file" : file == settings.clientCAFile ? "tls.client_ca" : "tls.cert_file"
            throw ConfigurationError(.unreadableFile, "TLS: \(error)", key: key, cause: error)
        }
        self.logger = logger
        expiry = Gauge(label: "tls_server_certificate_expiry_timestamp_seconds", factory: factory)
        report(credentials.current)
    }

    /// Loads the files again. A file that does not load leaves the current certificate serving, and says why.
    public func reload() {
        do {
            report(try credentials.reload())
            logger.info("TLS certificate reloaded")
        } catch {
            logger.error("TLS reload failed; the current certificate stays", metadata: ["error": "\(error)"])
        }
    }

    private func report(_ context: TLSContext) {
        guard let notAfter = context.certificateNotAfter else { return }
        expiry.record(notAfter)
        let metadata: Logger.Metadata = [
            "tls.subject": "\(context.certificateSubject ?? "")", "tls.not_after": "\(TLSContext.utc(notAfter))",
        ]
        if notAfter - SystemWallClock().now().seconds < Self.expiryWarning {
            logger.warning("the TLS certificate expires within 14 days", metadata: metadata)
        } else {
            logger.info("TLS certificate", metadata: metadata)
        }
    }
}

/// One counter per outcome and protocol version, made once (the factory's lookup is not free).
private final class HandshakeCounters: Sendable {
    private let ok: [String: Counter]
    private let failed: Counter
    private let other: Counter

    init(factory: any MetricsFactory) {
        func counter(_ result: String, _ version: String) -> Counter {
            Counter(label: "tls_server_handshakes_total", dimensions: [("result", result), ("version", version)], factory: factory)
        }
        ok = Dictionary(uniqueKeysWithValues: ["TLSv1.2", "TLSv1.3"].map { ($0, counter("ok", $0)) })
        failed = counter("failed", "none")
        other = counter("ok", "other")
    }

    func count(_ result: Result<TLSConnectionInfo, TLSError>) {
        switch result {
        case .success(let info): (ok[info.version] ?? other).increment()
        case .failure: failed.increment()
        }
    }
}
