import GatewayApplication
import RPCHTTP2

/// Serves download links (`GET /files/<file id>?expires=…&sig=…`) on the gRPC listener: 200 with the file's
/// bytes, 403 when the link was altered or has expired, 404 for anything else (a deleted file included).
public struct SignedDownloads: PlainHTTPHandler {
    private let library: FileLibrary

    public init(library: FileLibrary) {
        self.library = library
    }

    public func respond(to request: PlainHTTPRequest) async -> PlainHTTPResponse {
        let (path, query) = Self.split(request.path)
        guard path.hasPrefix("/files/") else { return .text(404, "not found") }
        let id = String(path.dropFirst("/files/".count))
        do {
            let (file, chunks) = try await library.openLink(id: id, expires: query["expires"], signature: query["sig"])
            var iterator = chunks.makeAsyncIterator()
            let reader = ChunkReader(next: { try await iterator.next() })
            return PlainHTTPResponse(
                status: 200,
                headers: [
                    // The type sniffed from the bytes (the key's extension), never the uploader's claim: a
                    // declared text/html must not run as a page of the gateway's origin.
                    ("content-type", FileExtension.contentType(of: file.key)), ("content-length", "\(file.size)"),
                    ("cache-control", "private, max-age=0"),
                ],
                body: { try await reader.next() }
            )
        } catch FileLibrary.LinkRefusal.forbidden(let reason) {
            return .text(403, "forbidden: \(reason)")
        } catch {
            return .text(404, "not found")
        }
    }

    /// The path and its query parameters (percent-decoding is not needed: keys, numbers and base64url only).
    static func split(_ target: String) -> (path: String, query: [String: String]) {
        let parts = target.split(separator: "?", maxSplits: 1, omittingEmptySubsequences: false)
        var query: [String: String] = [:]
        if parts.count == 2 {
            for pair in parts[1].split(separator: "&") {
                let kv = pair.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
                if kv.count == 2, query[String(kv[0])] == nil { query[String(kv[0])] = String(kv[1]) }
            }
        }
        return (String(parts[0]), query)
    }
}

/// Hands a non-Sendable iterator to the one task that pulls the body.
private final class ChunkReader: @unchecked Sendable {
    private let pull: () async throws -> [UInt8]?
    init(next: @escaping () async throws -> [UInt8]?) { pull = next }
    func next() async throws -> [UInt8]? { try await pull() }
}
