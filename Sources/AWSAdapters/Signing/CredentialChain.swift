#if canImport(Glibc)
import Glibc
#endif
import Foundation
import GatewayApplication
import ProtoRuntime
import Synchronization

/// The standard credential provider chain, in the AWS SDKs' order (botocore `credentials.py`): the first
/// source that has credentials wins.
/// 1. the environment: `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, optional `AWS_SESSION_TOKEN`;
/// 2. web identity (EKS service accounts): `AWS_WEB_IDENTITY_TOKEN_FILE` and `AWS_ROLE_ARN` (optional
///    `AWS_ROLE_SESSION_NAME`), exchanged with STS `AssumeRoleWithWebIdentity` (unsigned); the token file is
///    read again on every refresh, since it is rotated;
/// 3. the shared files: `~/.aws/credentials` (or `AWS_SHARED_CREDENTIALS_FILE`), then `~/.aws/config` (or
///    `AWS_CONFIG_FILE`), profile `AWS_PROFILE` or `default`;
/// 4. the container endpoint (ECS, EKS Pod Identity): `AWS_CONTAINER_CREDENTIALS_RELATIVE_URI` (under
///    169.254.170.2) or `AWS_CONTAINER_CREDENTIALS_FULL_URI` (https, or a loopback or link-local container
///    address), with `AWS_CONTAINER_AUTHORIZATION_TOKEN` or `…_TOKEN_FILE` as its `Authorization`.
///
/// Temporary credentials are refreshed before they expire (from halfway through their life, at most 15
/// minutes before the end), by one caller at a time; the others keep using the current ones until the last
/// minute, when they wait for the refresh. The EC2 instance metadata service is not consulted.
public final class AWSCredentialChain: AWSCredentialProvider {
    private let environment: [String: String]
    private let http: any HTTPClient
    private let clock: any WallClock
    /// STS for web identity: `https://sts.<region>.amazonaws.com`, or an override.
    private let stsURL: String

    private struct State {
        var current: AWSCredentials?
        var refreshAt: UnixTime?
        var refreshing: Task<AWSCredentials, any Error>?
    }

    private let state = Mutex(State())

    public init(environment: [String: String], http: any HTTPClient, clock: any WallClock, region: String, stsEndpointURL: String? = nil) {
        self.environment = environment.filter { !$0.value.isEmpty }
        self.http = http
        self.clock = clock
        self.stsURL = AWSEndpoint(service: "sts", region: region, endpointURL: stsEndpointURL).url
    }

    public func credentials() async throws -> AWSCredentials {
        let now = clock.now()
        enum Next { case use(AWSCredentials), useAndRefresh(AWSCredentials, Task<AWSCredentials, any Error>), wait(Task<AWSCredentials, any Error>) }
        let next: Next = state.withLock { state in
            if let current = state.current {
                guard let refreshAt = state.refreshAt, now >= refreshAt else { return .use(current) }
                let mandatory = current.expiration.map { now.seconds >= $0.seconds - 60 } ?? false
                let task = state.refreshing ?? startRefresh(&state)
                return mandatory ? .wait(task) : .useAndRefresh(current, task)
            }
            return .wait(state.refreshing ?? startRefresh(&state))
        }
        switch next {
        case .use(let credentials), .useAndRefresh(let credentials, _):
            return credentials
        case .wait(let task):
            return try await task.value
        }
    }

    /// Starts the one refresh; its result (or failure) is recorded for every caller.
    private func startRefresh(_ state: inout State) -> Task<AWSCredentials, any Error> {
        let task = Task { [self] in
            do {
                let fresh = try await resolve()
                self.state.withLock { state in
                    state.current = fresh
                    state.refreshing = nil
                    if let expiration = fresh.expiration {
                        let now = clock.now().seconds
                        let lead = min(15 * 60, max(0, (expiration.seconds - now) / 2))
                        state.refreshAt = UnixTime(seconds: expiration.seconds - lead)
                    } else {
                        state.refreshAt = nil
                    }
                }
                return fresh
            } catch {
                // Keep the old credentials (if any) until they expire; the next call tries again.
                self.state.withLock { $0.refreshing = nil }
                throw error
            }
        }
        state.refreshing = task
        return task
    }

    /// The first source of the chain that has credentials.
    func resolve() async throws -> AWSCredentials {
        if let id = environment["AWS_ACCESS_KEY_ID"], let secret = environment["AWS_SECRET_ACCESS_KEY"] {
            return AWSCredentials(accessKeyID: id, secretAccessKey: secret, sessionToken: environment["AWS_SESSION_TOKEN"], source: "environment")
        }
        if let tokenFile = environment["AWS_WEB_IDENTITY_TOKEN_FILE"], let role = environment["AWS_ROLE_ARN"] {
            return try await assumeRoleWithWebIdentity(tokenFile: tokenFile, role: role)
        }
        if let shared = try sharedFiles() { return shared }
        if let container = try await containerEndpoint() { return container }
        throw AWSCredentialsError("""
            no AWS credentials found: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or AWS_PROFILE with \
            ~/.aws/credentials, or AWS_WEB_IDENTITY_TOKEN_FILE and AWS_ROLE_ARN (EKS), or \
            AWS_CONTAINER_CREDENTIALS_FULL_URI (ECS, EKS Pod Identity)
            """)
    }

    // MARK: Shared files

    private func sharedFiles() throws -> AWSCredentials? {
        let home = environment["HOME"] ?? NSHomeDirectory()
        let profile = environment["AWS_PROFILE"] ?? environment["AWS_DEFAULT_PROFILE"] ?? "default"
        let credentialsFile = environment["AWS_SHARED_CREDENTIALS_FILE"] ?? "\(home)/.aws/credentials"
        let configFile = environment["AWS_CONFIG_FILE"] ?? "\(home)/.aws/config"
        // In the config file every profile but the default is `[profile name]`.
        for (file, section) in [(credentialsFile, profile), (configFile, profile == "default" ? "default" : "profile \(profile)")] {
            guard let text = Self.readText(file) else { continue }
            let values = Self.iniSection(section, in: text)
            if let id = values["aws_access_key_id"], let secret = values["aws_secret_access_key"] {
                return AWSCredentials(
                    accessKeyID: id, secretAccessKey: secret, sessionToken: values["aws_session_token"],
                    source: "profile \(profile) (\((file as NSString).lastPathComponent))"
                )
            }
        }
        if environment["AWS_PROFILE"] != nil {
            throw AWSCredentialsError("AWS_PROFILE names profile \(profile), which has no aws_access_key_id and aws_secret_access_key in \(credentialsFile) or \(configFile)")
        }
        return nil
    }

    /// The keys and values of `[section]` of an INI file (names lowercased, `#` and `;` comments skipped).
    static func iniSection(_ section: String, in text: String) -> [String: String] {
        var values: [String: String] = [:]
        var inside = false
        for raw in text.split(whereSeparator: \.isNewline) {
            let line = raw.trimmingCharacters(in: .whitespaces)
            if line.isEmpty || line.hasPrefix("#") || line.hasPrefix(";") { continue }
            if line.hasPrefix("[") && line.hasSuffix("]") {
                inside = line.dropFirst().dropLast().trimmingCharacters(in: .whitespaces) == section
                continue
            }
            guard inside, let equals = line.firstIndex(of: "=") else { continue }
            let key = line[..<equals].trimmingCharacters(in: .whitespaces).lowercased()
            values[key] = line[line.index(after: equals)...].trimmingCharacters(in: .whitespaces)
        }
        return values
    }

    // MARK: Web identity

    private func assumeRoleWithWebIdentity(tokenFile: String, role: String) async throws -> AWSCredentials {
        guard let token = Self.readText(tokenFile)?.trimmingCharacters(in: .whitespacesAndNewlines), !token.isEmpty else {
            throw AWSCredentialsError("AWS_WEB_IDENTITY_TOKEN_FILE \(tokenFile) cannot be read or is empty")
        }
        let session = environment["AWS_ROLE_SESSION_NAME"] ?? "gateway-\(clock.now().seconds)"
        let body = [
            ("Action", "AssumeRoleWithWebIdentity"), ("Version", "2011-06-15"), ("RoleArn", role), ("RoleSessionName", session),
            ("WebIdentityToken", token),
        ].map { "\(SigV4Signer.encode($0.0))=\(SigV4Signer.encode($0.1))" }.joined(separator: "&")
        let response: HTTPResponse
        do {
            response = try await http.send(HTTPRequest(
                method: "POST", url: stsURL + "/", headers: [("Content-Type", "application/x-www-form-urlencoded; charset=utf-8")],
                body: Array(body.utf8), timeout: .seconds(10)
            ))
        } catch let error as HTTPClientError {
            throw AWSCredentialsError("STS AssumeRoleWithWebIdentity at \(stsURL) failed: \(error.reason)")
        }
        guard response.status == 200 else {
            let error = AWSError.parse(service: "sts", operation: "AssumeRoleWithWebIdentity", response: response)
            throw AWSCredentialsError("STS refused AssumeRoleWithWebIdentity for role \(role): \(error.code) \(error.message)")
        }
        let credentials = (try? XMLDocument(parsing: response.body))?.root.child("AssumeRoleWithWebIdentityResult")?.child("Credentials")
        guard let credentials, let id = credentials.text(at: "AccessKeyId"), let secret = credentials.text(at: "SecretAccessKey"),
            let sessionToken = credentials.text(at: "SessionToken"), let expiration = credentials.text(at: "Expiration").flatMap(Self.time)
        else { throw AWSCredentialsError("STS answered AssumeRoleWithWebIdentity without usable credentials") }
        return AWSCredentials(accessKeyID: id, secretAccessKey: secret, sessionToken: sessionToken, expiration: expiration, source: "web identity (\(role))")
    }

    // MARK: Container endpoint

    private func containerEndpoint() async throws -> AWSCredentials? {
        let url: String
        if let relative = environment["AWS_CONTAINER_CREDENTIALS_RELATIVE_URI"] {
            url = "http://169.254.170.2" + (relative.hasPrefix("/") ? relative : "/" + relative)
        } else if let full = environment["AWS_CONTAINER_CREDENTIALS_FULL_URI"] {
            guard Self.isAllowedContainerURL(full) else {
                throw AWSCredentialsError("""
                    AWS_CONTAINER_CREDENTIALS_FULL_URI must be https, or http to a loopback address or the container \
                    credential addresses (169.254.170.2, 169.254.170.23, fd00:ec2::23)
                    """)
            }
            url = full
        } else {
            return nil
        }
        var headers: [(name: String, value: String)] = [("Accept", "application/json")]
        if let file = environment["AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE"] {
            guard let token = Self.readText(file)?.trimmingCharacters(in: .whitespacesAndNewlines) else {
                throw AWSCredentialsError("AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE \(file) cannot be read")
            }
            headers.append(("Authorization", token))
        } else if let token = environment["AWS_CONTAINER_AUTHORIZATION_TOKEN"] {
            headers.append(("Authorization", token))
        }
        var lastError = ""
        // Two seconds and three attempts, as the SDKs do.
        for attempt in 1...3 {
            do {
                let response = try await http.send(HTTPRequest(url: url, headers: headers, timeout: .seconds(2), connectTimeout: .seconds(2)))
                guard response.status == 200 else {
                    lastError = "status \(response.status)"
                    if response.status < 500 { break }
                    continue
                }
                guard case .object(let json)? = try? JSONParser.parse(response.body, maxDepth: 8),
                    case .string(let id)? = json["AccessKeyId"], case .string(let secret)? = json["SecretAccessKey"]
                else { throw AWSCredentialsError("the container credential endpoint answered without AccessKeyId and SecretAccessKey") }
                var token: String?
                if case .string(let value)? = json["Token"] { token = value }
                var expiration: UnixTime?
                if case .string(let value)? = json["Expiration"] { expiration = Self.time(value) }
                return AWSCredentials(accessKeyID: id, secretAccessKey: secret, sessionToken: token, expiration: expiration, source: "container endpoint")
            } catch let error as HTTPClientError {
                lastError = error.reason
                if attempt < 3 { try await Task.sleep(for: .milliseconds(100 * attempt)) }
            }
        }
        throw AWSCredentialsError("the container credential endpoint \(Self.redacted(url)) failed: \(lastError)")
    }

    static func isAllowedContainerURL(_ url: String) -> Bool {
        if url.hasPrefix("https://") { return true }
        guard url.hasPrefix("http://") else { return false }
        var host = Substring(url.dropFirst("http://".count))
        host = host.prefix { $0 != "/" }
        if host.hasPrefix("[") {
            host = host.dropFirst().prefix { $0 != "]" }
        } else if let colon = host.lastIndex(of: ":") {
            host = host[..<colon]
        }
        return host == "localhost" || host.hasPrefix("127.") || host == "::1" || host == "169.254.170.2" || host == "169.254.170.23"
            || host == "fd00:ec2::23"
    }

    /// A small text file (credentials, a token): at most 1 MiB, nil when it cannot be read. Read with `open`
    /// and `read`: Foundation's `String(contentsOfFile:)` leaks its buffer on an empty file (LeakSanitizer).
    static func readText(_ path: String) -> String? {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { return nil }
        defer { close(fd) }
        var bytes: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 16_384)
        while bytes.count <= 1 << 20 {
            let n = read(fd, &buffer, buffer.count)
            if n < 0 && errno == EINTR { continue }
            guard n >= 0 else { return nil }
            if n == 0 { return String(decoding: bytes, as: UTF8.self) }
            bytes += buffer[0..<n]
        }
        return nil
    }

    /// The URL without its query (which may carry a token).
    static func redacted(_ url: String) -> String { String(url.prefix { $0 != "?" }) }

    /// An ISO 8601 / RFC 3339 time, as STS and the container endpoint write `Expiration`.
    static func time(_ text: String) -> UnixTime? {
        guard let parsed = try? ProtoJSONTime.parseTimestamp(text) else { return nil }
        return UnixTime(seconds: parsed.seconds, nanoseconds: parsed.nanos)
    }
}
