import Foundation
import InteropTesting
import Logging
import NIOCore
import NIOEmbedded
@testable import OpenSSLTLS
import RPCCore
import RPCHTTP2
import StandardProtos
import Synchronization
import Testing

/// Certificates made for the tests with the `openssl` command: two CAs, a server certificate for
/// `localhost`/127.0.0.1 (ECDSA P-256) and a client certificate (CN=payments, a SPIFFE URI) from the first,
/// and a client certificate from the second CA, which the server does not trust.
struct TestPKI: Sendable {
    let directory: String

    func path(_ name: String) -> String { directory + "/" + name }

    static let shared: TestPKI = {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("tls-tests-\(getpid())").path
        try? FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        let pki = TestPKI(directory: directory)
        for ca in ["ca", "other-ca"] {
            pki.openssl([
                "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
                "-keyout", "\(ca).key", "-out", "\(ca).pem", "-days", "30", "-subj", "/CN=Test \(ca)",
            ])
        }
        pki.issue("server", ca: "ca", subject: "/CN=localhost", altNames: "DNS:localhost,IP:127.0.0.1")
        pki.issue("server2", ca: "other-ca", subject: "/CN=localhost", altNames: "DNS:localhost,IP:127.0.0.1")
        pki.issue("client", ca: "ca", subject: "/O=Example/CN=payments", altNames: "URI:spiffe://example.org/payments")
        pki.issue("stranger", ca: "other-ca", subject: "/CN=stranger", altNames: "DNS:stranger")
        pki.openssl(["pkey", "-in", "server.key", "-aes256", "-passout", "pass:s3cret", "-out", "server-encrypted.key"])
        _ = FileManager.default.createFile(atPath: pki.path("garbage.pem"), contents: Data("-----BEGIN CERTIFICATE-----\nnot base64\n".utf8))
        return pki
    }()

    private func issue(_ name: String, ca: String, subject: String, altNames: String) {
        openssl([
            "req", "-x509", "-CA", "\(ca).pem", "-CAkey", "\(ca).key", "-newkey", "ec", "-pkeyopt",
            "ec_paramgen_curve:prime256v1", "-nodes", "-keyout", "\(name).key", "-out", "\(name).pem", "-days", "30",
            "-subj", subject, "-addext", "subjectAltName=\(altNames)", "-addext", "basicConstraints=critical,CA:FALSE",
            "-addext", "extendedKeyUsage=serverAuth,clientAuth",
        ])
    }

    /// Runs the `openssl` command in the directory. Through `system(3)` rather than Foundation's `Process`,
    /// whose `run()` leaks a weak-reference side table per process (LeakSanitizer reports it in the ASan job).
    private func openssl(_ arguments: [String]) {
        let command = "cd '\(directory)' && /usr/bin/openssl " + arguments.map { "'\($0)'" }.joined(separator: " ") + " >/dev/null 2>&1"
        precondition(system(command) == 0, "openssl \(arguments.joined(separator: " ")) failed")
    }

    func server(clientCA: String? = nil, certificate: String = "server") -> TLSServerConfiguration {
        var configuration = TLSServerConfiguration(certificateChainFile: path("\(certificate).pem"), privateKeyFile: path("\(certificate).key"))
        configuration.clientCAFile = clientCA.map { path("\($0).pem") }
        return configuration
    }

    func client(ca: String = "ca", certificate: String? = nil) throws -> TLSContext {
        var configuration = TLSClientConfiguration(caFile: path("\(ca).pem"))
        configuration.certificateChainFile = certificate.map { path("\($0).pem") }
        configuration.privateKeyFile = certificate.map { path("\($0).key") }
        return try TLSContext.client(configuration)
    }
}

@Suite("TLS configuration")
struct TLSConfigurationTests {
    let pki = TestPKI.shared

    @Test func aGoodCertificateAndKeyLoad() throws {
        let context = try TLSContext.server(pki.server(clientCA: "ca"))
        #expect(context.certificateSubject == "CN=localhost")
        #expect(context.certificateNotAfter! > Int64(Date().timeIntervalSince1970) + 29 * 86_400)
    }

    @Test(arguments: [
        ("missing.pem", "server.key", "missing.pem: cannot read it: No such file or directory"),
        ("garbage.pem", "server.key", "garbage.pem: no PEM certificate in it"),
        ("server.key", "server.key", "server.key: no PEM certificate in it"),
        ("server.pem", "server.pem", "server.pem: no PEM private key in it"),
        ("server.pem", "client.key", "client.key: the key does not match the certificate in"),
        ("server.pem", "server-encrypted.key", "server-encrypted.key: the key is encrypted and no passphrase was given"),
    ])
    func aBadFileIsNamedWithTheReason(certificate: String, key: String, expected: String) throws {
        let configuration = TLSServerConfiguration(certificateChainFile: pki.path(certificate), privateKeyFile: pki.path(key))
        let error = #expect(throws: TLSConfigurationError.self) { try TLSContext.server(configuration) }
        #expect(error?.description.hasPrefix(pki.path(expected)) == true, "\(String(describing: error))")
    }

    @Test func anEncryptedKeyOpensWithItsPassphraseOnly() throws {
        var configuration = pki.server()
        configuration.privateKeyFile = pki.path("server-encrypted.key")
        configuration.keyPassphrase = "s3cret"
        _ = try TLSContext.server(configuration)
        configuration.keyPassphrase = "wrong"
        let error = #expect(throws: TLSConfigurationError.self) { try TLSContext.server(configuration) }
        #expect(error?.reason.hasPrefix("cannot decrypt the key (wrong passphrase?)") == true)
    }

    @Test func anExpiredOrNotYetValidCertificateIsRefused() throws {
        let notAfter = try TLSContext.server(pki.server()).certificateNotAfter!
        let expired = #expect(throws: TLSConfigurationError.self) { try TLSContext.server(pki.server(), now: notAfter + 1) }
        #expect(expired?.reason.hasPrefix("the certificate (CN=localhost) expired at ") == true)
        let early = #expect(throws: TLSConfigurationError.self) { try TLSContext.server(pki.server(), now: 0) }
        #expect(early?.reason.hasPrefix("the certificate (CN=localhost) is not valid before ") == true)
    }

    @Test func aClientCAFileMustHoldCertificates() throws {
        let error = #expect(throws: TLSConfigurationError.self) { try TLSContext.server(pki.server(clientCA: "garbage")) }
        #expect(error?.description.hasPrefix(pki.path("garbage.pem") + ": malformed certificate") == true, "\(String(describing: error))")
    }
}

@Suite("gRPC over TLS")
struct TLSCallTests {
    let pki = TestPKI.shared

    /// Serves `WhoAmI` over TLS with `credentials`, and runs `body` with the port.
    func withServer(_ credentials: TLSServerCredentials, _ body: @Sendable (Int) async throws -> Void) async throws {
        let server = GRPCServer(
            services: [WhoAmIService()], configuration: .defaults { $0.port = 0; $0.tls = credentials }, logger: quietLogger
        )
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { try await server.run() }
            let port = try await server.listeningAddress.port!
            do {
                try await body(port)
            } catch {
                group.cancelAll()
                throw error
            }
            group.cancelAll()
        }
    }

    /// One call on a new connection: the subject the server saw, or the error.
    func call(port: Int, _ tls: TLSContext, serverName: String? = nil) async throws -> String {
        let transport = HTTP2ClientTransport(
            host: "127.0.0.1", port: port, configuration: .defaults { $0.tls = tls; $0.tlsServerName = serverName }
        )
        defer { Task { await transport.close() } }
        let reply = try await Grpc_Testing_TestService.Client(RPCClient(transport: transport)).unaryCall(Grpc_Testing_SimpleRequest())
        return reply.username
    }

    @Test func aCallOverTLSSeesNoClientCertificateWithoutMutualTLS() async throws {
        try await withServer(TLSServerCredentials(pki.server())) { port in
            do {
                let seen = try await call(port: port, pki.client(), serverName: "localhost")
                #expect(seen == "anonymous")
            }
            // The address is checked against the certificate's IP SAN.
            do {
                let seen = try await call(port: port, pki.client())
                #expect(seen == "anonymous")
            }
        }
    }

    @Test func theServerNameIsChecked() async throws {
        try await withServer(TLSServerCredentials(pki.server())) { port in
            let error = await #expect(throws: RPCError.self) { try await call(port: port, pki.client(), serverName: "example.com") }
            let cause = error?.cause.map { "\($0)" } ?? ""
            #expect(error?.code == .unavailable)
            #expect(cause.contains("certificate verification failed: hostname mismatch"), "\(cause)")
        }
    }

    @Test func aServerFromAnotherCAIsRefused() async throws {
        try await withServer(TLSServerCredentials(pki.server())) { port in
            let error = await #expect(throws: RPCError.self) { try await call(port: port, pki.client(ca: "other-ca")) }
            let cause = error?.cause.map { "\($0)" } ?? ""
            #expect(error?.code == .unavailable)
            #expect(cause.contains("certificate verification failed"), "\(cause)")
        }
    }

    @Test func mutualTLSGivesTheHandlerTheClientsIdentityAndRefusesOthers() async throws {
        try await withServer(TLSServerCredentials(pki.server(clientCA: "ca"))) { port in
            do {
                let seen = try await call(port: port, pki.client(certificate: "client"))
                #expect(seen == "CN=payments,O=Example URI:spiffe://example.org/payments")
            }
            for stranger in [nil, "stranger"] {
                await #expect(throws: RPCError.self) { try await call(port: port, pki.client(certificate: stranger)) }
            }
        }
    }

    @Test func optionalClientAuthenticationAdmitsAnonymousClients() async throws {
        var configuration = pki.server(clientCA: "ca")
        configuration.clientAuthentication = .optional
        try await withServer(TLSServerCredentials(configuration)) { port in
            do {
                let seen = try await call(port: port, pki.client())
                #expect(seen == "anonymous")
            }
            do {
                let seen = try await call(port: port, pki.client(certificate: "client"))
                #expect(seen.hasPrefix("CN=payments,O=Example"))
            }
            await #expect(throws: RPCError.self) { try await call(port: port, pki.client(certificate: "stranger")) }
        }
    }

    /// A reload swaps the certificate for new connections; a connection opened before keeps working.
    @Test func aReloadServesTheNewCertificateToNewConnectionsAndKeepsOpenOnes() async throws {
        let directory = pki.path("reload-\(UUID().uuidString)")
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        @Sendable func install(_ name: String) throws {
            for ext in ["pem", "key"] {
                try? FileManager.default.removeItem(atPath: "\(directory)/current.\(ext)")
                try FileManager.default.copyItem(atPath: pki.path("\(name).\(ext)"), toPath: "\(directory)/current.\(ext)")
            }
        }
        try install("server")
        let credentials = try TLSServerCredentials(
            TLSServerConfiguration(certificateChainFile: "\(directory)/current.pem", privateKeyFile: "\(directory)/current.key")
        )
        try await withServer(credentials) { port in
            let early = HTTP2ClientTransport(host: "127.0.0.1", port: port, configuration: .defaults { $0.tls = try! pki.client() })
            let earlyClient = Grpc_Testing_TestService.Client(RPCClient(transport: early))
            _ = try await earlyClient.unaryCall(Grpc_Testing_SimpleRequest())

            try install("server2")
            try credentials.reload()
            do {
                let seen = try await call(port: port, pki.client(ca: "other-ca"))
                #expect(seen == "anonymous")
            }
            await #expect(throws: RPCError.self) { try await call(port: port, pki.client(ca: "ca")) }
            _ = try await earlyClient.unaryCall(Grpc_Testing_SimpleRequest())

            // A broken file keeps the current certificate.
            try "junk".write(toFile: "\(directory)/current.pem", atomically: true, encoding: .utf8)
            #expect(throws: TLSConfigurationError.self) { try credentials.reload() }
            do {
                let seen = try await call(port: port, pki.client(ca: "other-ca"))
                #expect(seen == "anonymous")
            }
            await early.close()
        }
    }

    /// A peer that accepts TCP and never answers the ClientHello: the connect fails after the connect timeout
    /// (before, the handshake waited forever, and every later call with it).
    @Test func aHandshakeThatNeverEndsFailsAfterTheConnectTimeout() async throws {
        let silent = try SilentListener()
        defer { silent.close() }
        let transport = HTTP2ClientTransport(
            host: "127.0.0.1", port: silent.port,
            configuration: .defaults { $0.tls = try! pki.client(); $0.connectTimeout = .milliseconds(300) }
        )
        for _ in 0..<2 {
            let error = await #expect(throws: RPCError.self) {
                try await Grpc_Testing_TestService.Client(RPCClient(transport: transport)).unaryCall(Grpc_Testing_SimpleRequest())
            }
            #expect(error?.code == .unavailable)
        }
        await transport.close()
    }

    /// Every connection's SSL, BIOs and contexts are freed: run under LeakSanitizer (the ASan job), a leak
    /// fails the suite. Half the handshakes fail verification, half succeed.
    @Test func manyHandshakesLeaveNothingBehind() async throws {
        try await withServer(TLSServerCredentials(pki.server(clientCA: "ca"))) { port in
            for i in 0..<200 {
                if i.isMultiple(of: 2) {
                    _ = try await call(port: port, pki.client(certificate: "client"))
                } else {
                    await #expect(throws: RPCError.self) { try await call(port: port, pki.client(ca: "other-ca")) }
                }
            }
        }
    }
}

@Suite("TLS handler")
struct TLSHandlerTests {
    /// A client and a server handler (`serverHandler`, or a new one) on two embedded channels, with the bytes
    /// moved between them by hand.
    func handshaken(serverHandler: TLSHandler? = nil) throws -> (client: EmbeddedChannel, server: EmbeddedChannel) {
        let server = EmbeddedChannel(handler: try serverHandler ?? TLSHandler(context: TLSContext.server(TestPKI.shared.server())))
        let client = EmbeddedChannel(handler: try TLSHandler(context: TestPKI.shared.client(), serverName: "localhost"))
        try server.connect(to: SocketAddress(ipAddress: "127.0.0.1", port: 1)).wait()
        try client.connect(to: SocketAddress(ipAddress: "127.0.0.1", port: 2)).wait()
        try shuttle(client, server)
        return (client, server)
    }

    /// Moves the ciphertext each side wrote to the other until neither has more.
    func shuttle(_ a: EmbeddedChannel, _ b: EmbeddedChannel) throws {
        var moved = true
        while moved {
            moved = false
            for (from, to) in [(a, b), (b, a)] {
                while let bytes = try from.readOutbound(as: ByteBuffer.self) {
                    try to.writeInbound(bytes)
                    moved = true
                }
            }
        }
    }

    @Test func plaintextCrossesAndTheInfoNamesTheProtocol() throws {
        let (client, server) = try handshaken()
        try client.writeAndFlush(ByteBuffer(string: "hello")).wait()
        try shuttle(client, server)
        #expect(try server.readInbound(as: ByteBuffer.self) == ByteBuffer(string: "hello"))
        _ = try client.finish(acceptAlreadyClosed: true)
        _ = try server.finish(acceptAlreadyClosed: true)
    }

    /// OpenSSL's record buffers (about 34 KiB a connection) are freed once the connection has been quiet for
    /// ``TLSHandler/quietInterval``, not after every record (the churn cost a tenth of the throughput), and
    /// come back for the next record.
    @Test func aQuietConnectionsRecordBuffersAreFreedAndComeBack() throws {
        let handler = try TLSHandler(context: TLSContext.server(TestPKI.shared.server()))
        let (client, server) = try handshaken(serverHandler: handler)
        let quiet = TLSHandler.quietInterval
        for round in 1...3 {
            try client.writeAndFlush(ByteBuffer(string: "ping \(round)")).wait()
            try shuttle(client, server)
            #expect(try server.readInbound(as: ByteBuffer.self) == ByteBuffer(string: "ping \(round)"))
            server.embeddedEventLoop.advanceTime(by: .nanoseconds(quiet.nanoseconds / 2))
            try client.writeAndFlush(ByteBuffer(string: "busy")).wait()
            try shuttle(client, server)
            _ = try server.readInbound(as: ByteBuffer.self)
            server.embeddedEventLoop.advanceTime(by: .nanoseconds(quiet.nanoseconds / 2) + .milliseconds(1))
            #expect(handler.buffersReleased == round - 1, "traffic within the interval keeps them")
            server.embeddedEventLoop.advanceTime(by: quiet)
            #expect(handler.buffersReleased == round, "a quiet interval frees them")
            try server.writeAndFlush(ByteBuffer(string: "pong")).wait()
            try shuttle(client, server)
            #expect(try client.readInbound(as: ByteBuffer.self) == ByteBuffer(string: "pong"))
        }
        _ = try client.finish(acceptAlreadyClosed: true)
        _ = try server.finish(acceptAlreadyClosed: true)
    }

    /// After HTTP/2's final GOAWAY the server half-closes (close_notify) and keeps reading for a moment; a
    /// late PING's ACK written then fails that write only. It used to be a TLS failure that closed the
    /// connection at once, which the half-close exists to avoid (review finding).
    @Test func aWriteAfterTheOutputIsClosedFailsThatWriteOnly() throws {
        let (client, server) = try handshaken()
        server.close(mode: .output, promise: nil)
        let late = server.writeAndFlush(ByteBuffer(string: "ack"))
        #expect(throws: ChannelError.outputClosed) { try late.wait() }
        #expect(throws: Never.self) { try server.throwIfErrorCaught() }
        try shuttle(client, server)
        _ = try client.finish(acceptAlreadyClosed: true)
        _ = try server.finish(acceptAlreadyClosed: true)
    }

    /// A connection closed by the handlers after it (the handshake timeout) before its handshake ended: the
    /// handshake's future fails instead of leaking (which NIO reports as a crash in debug builds, and which left
    /// a client's connect waiting forever).
    @Test func closingBeforeTheHandshakeEndsFailsTheHandshake() throws {
        let channel = EmbeddedChannel()
        let handler = try TLSHandler(context: TLSContext.server(TestPKI.shared.server()))
        try channel.pipeline.syncOperations.addHandler(handler)
        try channel.connect(to: SocketAddress(ipAddress: "127.0.0.1", port: 1)).wait()
        try channel.writeInbound(ByteBuffer(bytes: [0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00, 0x01, 0xFC, 0x03, 0x03]))
        let outcome = Mutex<Result<TLSConnectionInfo, any Error>?>(nil)
        try #require(handler.handshakeCompleted).whenComplete { result in outcome.withLock { $0 = result } }
        // finish(), not only close(): it also runs the loop that takes the handlers out of the pipeline, which
        // otherwise keeps them (and the SSL) alive.
        _ = try channel.finish(acceptAlreadyClosed: true)
        let ended = outcome.withLock { $0 }
        #expect(ended != nil)
        #expect(throws: TLSError.self) { try ended?.get() }
    }
}

/// Refused handshakes are logged at info: expected here.
private let quietLogger: Logger = {
    var logger = Logger(label: "test")
    logger.logLevel = .warning
    return logger
}()

/// Answers `UnaryCall` with the client certificate the transport verified, in `username`.
struct WhoAmIService: RPCService {
    func registerMethods(with router: inout RPCRouter) {
        router.unary(Grpc_Testing_TestService.Method.unaryCall) { (_: Grpc_Testing_SimpleRequest, context) -> Grpc_Testing_SimpleResponse in
            .with {
                $0.username = context.clientCertificate.map { ([$0.subject] + $0.subjectAlternativeNames).joined(separator: " ") } ?? "anonymous"
            }
        }
    }
}
