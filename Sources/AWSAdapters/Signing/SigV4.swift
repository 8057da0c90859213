import GatewayApplication
import OpenSSLCrypto
import ProtoRuntime
import Synchronization

/// AWS Signature Version 4 ("Signature Version 4 signing process", AWS General Reference; "Authenticating
/// Requests (AWS Signature Version 4)", Amazon S3 API Reference): the `Authorization` header form for every
/// request the adapters send, and the query-string (presigned URL) form for S3 download links.
///
/// One signer in the project, used for every request, so that libcurl's own `CURLOPT_AWS_SIGV4` (which in
/// curl 7.88 neither sorts the query nor hashes streamed bodies) never runs.
public struct SigV4Signer: Sendable {
    /// The signing region, e.g. `us-east-1`.
    public var region: String
    /// The signing name of the service: `dynamodb`, `s3`, `sns`, `sts`.
    public var service: String

    /// The payload hash of a body that is not hashed (S3 only).
    public static let unsignedPayload = "UNSIGNED-PAYLOAD"
    /// SHA-256 of the empty string.
    public static let emptyPayloadHash = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"

    public init(region: String, service: String) {
        self.region = region
        self.service = service
    }

    /// What a signed request needs besides its body.
    public struct Request: Sendable {
        public var method: String
        /// `host` or `host:port` (the port only when it is not the scheme's default), as the `Host` header says.
        public var host: String
        /// The path as sent on the wire: already percent-encoded once (S3 keys) or `/`.
        public var path: String
        /// The query as sent on the wire, without `?` (may be empty).
        public var query: String
        /// Headers to sign and send, besides `host`, `x-amz-date` and `x-amz-security-token`, which the signer
        /// adds. Names in any case.
        public var headers: [(name: String, value: String)]

        public init(method: String, host: String, path: String, query: String = "", headers: [(name: String, value: String)] = []) {
            self.method = method
            self.host = host
            self.path = path
            self.query = query
            self.headers = headers
        }
    }

    /// The headers to send with `request`: its own, plus `X-Amz-Date`, `X-Amz-Security-Token` (temporary
    /// credentials) and `Authorization`. `payloadHash` is the lowercase hex SHA-256 of the body, or
    /// ``unsignedPayload``; S3 also wants it sent as `x-amz-content-sha256`, which the caller includes in
    /// `request.headers`.
    public func sign(
        _ request: Request, payloadHash: String, credentials: AWSCredentials, at time: UnixTime
    ) -> [(name: String, value: String)] {
        let stamp = AmzDate(time)
        var headers = request.headers
        headers.append(("X-Amz-Date", stamp.dateTime))
        if let token = credentials.sessionToken { headers.append(("X-Amz-Security-Token", token)) }
        let canonical = canonicalHeaders(headers + [("host", request.host)])
        let canonicalRequest = [
            request.method, canonicalURI(request.path), Self.canonicalQuery(request.query), canonical.lines,
            canonical.signed, payloadHash,
        ].joined(separator: "\n")
        let scope = "\(stamp.date)/\(region)/\(service)/aws4_request"
        let signature = self.signature(canonicalRequest: canonicalRequest, scope: scope, stamp: stamp, credentials: credentials)
        headers.append((
            "Authorization",
            "AWS4-HMAC-SHA256 Credential=\(credentials.accessKeyID)/\(scope), SignedHeaders=\(canonical.signed), Signature=\(signature)"
        ))
        return headers
    }

    /// A presigned URL's query for `request` (S3 GET or PUT): the request's own query parameters plus the
    /// `X-Amz-*` ones, the signature last. Only `host` is signed, so the holder sends no other header.
    public func presignedQuery(
        _ request: Request, expiresInSeconds: Int, credentials: AWSCredentials, at time: UnixTime
    ) -> String {
        let stamp = AmzDate(time)
        let scope = "\(stamp.date)/\(region)/\(service)/aws4_request"
        var parameters = request.query.isEmpty ? [] : [request.query]
        parameters += [
            "X-Amz-Algorithm=AWS4-HMAC-SHA256",
            "X-Amz-Credential=" + Self.encode("\(credentials.accessKeyID)/\(scope)"),
            "X-Amz-Date=\(stamp.dateTime)",
            "X-Amz-Expires=\(expiresInSeconds)",
            "X-Amz-SignedHeaders=host",
        ]
        if let token = credentials.sessionToken { parameters.append("X-Amz-Security-Token=" + Self.encode(token)) }
        let query = parameters.joined(separator: "&")
        let canonicalRequest = [
            request.method, canonicalURI(request.path), Self.canonicalQuery(query), "host:\(request.host)\n", "host",
            Self.unsignedPayload,
        ].joined(separator: "\n")
        let signature = self.signature(canonicalRequest: canonicalRequest, scope: scope, stamp: stamp, credentials: credentials)
        return query + "&X-Amz-Signature=" + signature
    }

    // MARK: Pieces, internal for the test vectors

    func signature(canonicalRequest: String, scope: String, stamp: AmzDate, credentials: AWSCredentials) -> String {
        let stringToSign = [
            "AWS4-HMAC-SHA256", stamp.dateTime, scope, Hex.lowercase(Digest.sha256(Array(canonicalRequest.utf8))),
        ].joined(separator: "\n")
        let key = SigningKeyCache.shared.key(
            secret: credentials.secretAccessKey, date: stamp.date, region: region, service: service
        )
        return Hex.lowercase(Digest.hmacSHA256(key: key, message: Array(stringToSign.utf8)))
    }

    /// HMAC(HMAC(HMAC(HMAC("AWS4" + secret, date), region), service), "aws4_request").
    static func signingKey(secret: String, date: String, region: String, service: String) -> [UInt8] {
        var key = Array("AWS4\(secret)".utf8)
        for part in [date, region, service, "aws4_request"] {
            key = Digest.hmacSHA256(key: key, message: Array(part.utf8))
        }
        return key
    }

    /// S3 signs the path as sent (encoded once); every other service normalises it and encodes each segment
    /// again.
    func canonicalURI(_ path: String) -> String {
        let path = path.isEmpty ? "/" : path
        guard service != "s3" else { return path }
        var segments: [Substring] = []
        for segment in path.split(separator: "/", omittingEmptySubsequences: true) {
            switch segment {
            case ".": continue
            case "..": _ = segments.popLast()
            default: segments.append(segment)
            }
        }
        let trailing = path.hasSuffix("/") && !segments.isEmpty
        return "/" + segments.map { Self.encode(String($0)) }.joined(separator: "/") + (trailing ? "/" : "")
    }

    /// Names lowercased, values trimmed with inner runs of spaces collapsed, repeated names joined with `,`,
    /// sorted by name.
    func canonicalHeaders(_ headers: [(name: String, value: String)]) -> (lines: String, signed: String) {
        var merged: [String: [String]] = [:]
        for (name, value) in headers {
            merged[name.lowercased(), default: []].append(Self.trimmed(value))
        }
        let names = merged.keys.sorted { Array($0.utf8).lexicographicallyPrecedes(Array($1.utf8)) }
        let lines = names.map { "\($0):\(merged[$0]!.joined(separator: ","))\n" }.joined()
        return (lines, names.joined(separator: ";"))
    }

    /// Decodes each name and value, encodes them again as RFC 3986 wants (`%20`, uppercase hex), sorts by
    /// name then value.
    static func canonicalQuery(_ query: String) -> String {
        guard !query.isEmpty else { return "" }
        let pairs = query.split(separator: "&", omittingEmptySubsequences: true).map { part -> (String, String) in
            let pieces = part.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
            let name = encode(percentDecode(pieces[0]))
            let value = pieces.count > 1 ? encode(percentDecode(pieces[1])) : ""
            return (name, value)
        }
        return pairs.sorted { a, b in
            a.0 == b.0 ? Array(a.1.utf8).lexicographicallyPrecedes(Array(b.1.utf8))
                : Array(a.0.utf8).lexicographicallyPrecedes(Array(b.0.utf8))
        }.map { "\($0.0)=\($0.1)" }.joined(separator: "&")
    }

    /// RFC 3986 percent-encoding: everything but `A-Z a-z 0-9 - _ . ~` as uppercase `%XX` (with `/` kept
    /// when `keepingSlash`, for S3 keys).
    public static func encode(_ text: String, keepingSlash: Bool = false) -> String {
        let digits = Array("0123456789ABCDEF".utf8)
        var out: [UInt8] = []
        out.reserveCapacity(text.utf8.count)
        for byte in text.utf8 {
            switch byte {
            case UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "0")...UInt8(ascii: "9"),
                UInt8(ascii: "-"), UInt8(ascii: "_"), UInt8(ascii: "."), UInt8(ascii: "~"):
                out.append(byte)
            case UInt8(ascii: "/") where keepingSlash:
                out.append(byte)
            default:
                out += [UInt8(ascii: "%"), digits[Int(byte >> 4)], digits[Int(byte & 15)]]
            }
        }
        return String(decoding: out, as: UTF8.self)
    }

    static func percentDecode(_ text: Substring) -> String {
        var out: [UInt8] = []
        let bytes = Array(text.utf8)
        var i = 0
        while i < bytes.count {
            if bytes[i] == UInt8(ascii: "%"), i + 2 < bytes.count, let high = Hex.value(bytes[i + 1]), let low = Hex.value(bytes[i + 2]) {
                out.append(high << 4 | low)
                i += 3
            } else {
                out.append(bytes[i])
                i += 1
            }
        }
        return String(decoding: out, as: UTF8.self)
    }

    private static func trimmed(_ value: String) -> String {
        value.split(separator: " ", omittingEmptySubsequences: true).joined(separator: " ")
            .trimmingCharacters(in: "\t")
    }
}

/// `yyyyMMdd'T'HHmmss'Z'` and `yyyyMMdd` in UTC, as SigV4 writes times.
struct AmzDate {
    let dateTime: String
    var date: String { String(dateTime.prefix(8)) }

    init(_ time: UnixTime) {
        let iso = (try? ProtoJSONTime.formatTimestamp(seconds: time.seconds, nanos: 0)) ?? "1970-01-01T00:00:00Z"
        dateTime = String(iso.filter { $0 != "-" && $0 != ":" })
    }
}

/// Signing keys depend only on the secret, the day, the region and the service: four HMACs saved per
/// request (SigV4 "can be cached", AWS General Reference).
final class SigningKeyCache: Sendable {
    static let shared = SigningKeyCache()

    private struct Entry {
        var secretHash: [UInt8]
        var date: String
        var key: [UInt8]
    }

    private let entries = Mutex<[String: Entry]>([:])

    func key(secret: String, date: String, region: String, service: String) -> [UInt8] {
        // Keyed by region and service; the secret is compared by its hash, never kept as text.
        let id = "\(region)/\(service)"
        let secretHash = Digest.sha256(Array(secret.utf8))
        if let entry = entries.withLock({ $0[id] }), entry.date == date, entry.secretHash == secretHash {
            return entry.key
        }
        let key = SigV4Signer.signingKey(secret: secret, date: date, region: region, service: service)
        entries.withLock { $0[id] = Entry(secretHash: secretHash, date: date, key: key) }
        return key
    }
}

/// Lowercase hexadecimal.
enum Hex {
    static func lowercase(_ bytes: some Sequence<UInt8>) -> String {
        let digits = Array("0123456789abcdef".utf8)
        var out: [UInt8] = []
        for byte in bytes { out += [digits[Int(byte >> 4)], digits[Int(byte & 15)]] }
        return String(decoding: out, as: UTF8.self)
    }

    static func value(_ c: UInt8) -> UInt8? {
        switch c {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): c - UInt8(ascii: "0")
        case UInt8(ascii: "a")...UInt8(ascii: "f"): c - UInt8(ascii: "a") + 10
        case UInt8(ascii: "A")...UInt8(ascii: "F"): c - UInt8(ascii: "A") + 10
        default: nil
        }
    }
}

extension String {
    fileprivate func trimmingCharacters(in set: String) -> String {
        let unwanted = Set(set.utf8 + [UInt8(ascii: " ")])
        let bytes = Array(utf8)
        guard let first = bytes.firstIndex(where: { !unwanted.contains($0) }),
            let last = bytes.lastIndex(where: { !unwanted.contains($0) })
        else { return "" }
        return String(decoding: bytes[first...last], as: UTF8.self)
    }
}
