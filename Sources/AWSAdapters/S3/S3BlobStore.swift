import GatewayApplication
import NIOPosix
import OpenSSLCrypto
import Synchronization

/// Blobs in an S3 bucket under their content address (`ab/<sha256>.<ext>`, as on disk): `BlobStore`.
///
/// An upload is spooled to an unnamed local temporary file while it is hashed (SHA-256 of the whole and of each
/// multipart part), so nothing reaches the bucket before its size and hash are checked, and bytes that are
/// already stored are never sent again. Publishing is a create-only `PUT` (`If-None-Match: *`: two gateways
/// publishing the same bytes cannot clobber each other; `412` means already there) with the content's
/// SHA-256 as `x-amz-content-sha256`, server-side encryption and the hash as user metadata. Blobs larger than
/// `multipartThreshold` go up in parts of `partSize` read from the spool file one at a time (memory stays
/// bounded), and a failed multipart upload is aborted. Reads are ranged `GET`s streamed to the reader.
public final class S3BlobStore: BlobStore {
    public struct Settings: Sendable {
        public var bucket: String
        /// `AES256` (SSE-S3), `aws:kms`, or nil to send no encryption header.
        public var serverSideEncryption: String? = "AES256"
        public var kmsKeyID: String?
        public var multipartThreshold: Int64 = 16 << 20
        public var partSize: Int64 = 8 << 20
        /// Where uploads are spooled (unnamed files: nothing is left there after a crash).
        public var spoolDirectory = "/tmp"
        /// Addresses objects as `<endpoint>/<bucket>/<key>` (custom endpoints) instead of `<bucket>.<endpoint>/<key>`.
        public var pathStyle = true

        public init(bucket: String) {
            self.bucket = bucket
        }
    }

    let client: AWSClient
    public let settings: Settings
    private let threads: NIOThreadPool

    init(client: AWSClient, settings: Settings) {
        self.client = client
        self.settings = settings
        threads = NIOThreadPool(numberOfThreads: 2)
        threads.start()
    }

    deinit {
        threads.shutdownGracefully { _ in }
    }

    /// The object's path on the wire: `/<bucket>/<key>` (path style) or `/<key>`, encoded once.
    func path(_ key: String) -> String {
        let encoded = SigV4Signer.encode(key, keepingSlash: true)
        return settings.pathStyle ? "/\(settings.bucket)/\(encoded)" : "/\(encoded)"
    }

    /// Checks that the bucket exists and the credentials may use it.
    public func check() async throws {
        do {
            _ = try await client.send(.init(operation: "HeadBucket", method: "HEAD", path: settings.pathStyle ? "/\(settings.bucket)" : "/"))
        } catch let error as AWSError where error.status == 404 {
            throw AWSBackend.Problem("""
                S3 bucket \(settings.bucket) does not exist: create it with `gateway migrate` (same flags as serve), \
                or point --s3-bucket at the gateway's bucket
                """)
        } catch let error as AWSError where error.status == 403 {
            throw AWSBackend.Problem("S3 bucket \(settings.bucket) refuses the gateway's credentials (\(error.code))")
        }
    }

    /// Creates the bucket unless it exists (`gateway migrate`); returns whether it created it. Outside
    /// us-east-1 the region goes in a `LocationConstraint`, as CreateBucket requires.
    @discardableResult
    public func createBucket() async throws -> Bool {
        if (try? await check()) != nil { return false }
        let region = client.endpoint.region
        let body = region == "us-east-1" ? "" : "<CreateBucketConfiguration xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\">"
            + "<LocationConstraint>\(region)</LocationConstraint></CreateBucketConfiguration>"
        do {
            _ = try await client.send(.init(
                operation: "CreateBucket", method: "PUT", path: settings.pathStyle ? "/\(settings.bucket)" : "/",
                headers: body.isEmpty ? [] : [("Content-Type", "application/xml")], body: Array(body.utf8)
            ))
            return true
        } catch let error as AWSError where error.code == "BucketAlreadyOwnedByYou" {
            return false
        }
    }

    // MARK: BlobStore

    public func beginUpload() async throws -> any BlobUpload {
        let (directory, threads) = (settings.spoolDirectory, threads)
        // Creating the file blocks: on the spool's threads.
        return S3BlobUpload(store: self, spool: try await threads.runIfActive { try SpoolFile(in: directory, threads: threads) })
    }

    /// ListObjectsV2 (Amazon S3 API Reference), `start-after` the given key; objects whose names are not
    /// blob keys are skipped.
    public func keys(after: BlobKey?, limit: Int) async throws -> [BlobKey] {
        try await storageErrors {
            var query = "list-type=2&max-keys=\(max(1, min(limit, 1000)))"
            if let after { query += "&start-after=\(SigV4Signer.encode(after.value))" }
            let response = try await client.send(.init(
                operation: "ListObjectsV2", method: "GET", path: settings.pathStyle ? "/\(settings.bucket)" : "/", query: query
            ))
            let document = try XMLDocument(parsing: response.body)
            return document.root.children("Contents").compactMap { $0.text(at: "Key").flatMap(BlobKey.init(parsing:)) }
        }
    }

    public func size(of key: BlobKey) async throws -> Int64? {
        try await storageErrors {
            do {
                let response = try await client.send(.init(operation: "HeadObject", method: "HEAD", path: path(key.value)))
                return response.header("content-length").flatMap { Int64($0) }
            } catch let error as AWSError where error.status == 404 {
                return nil
            }
        }
    }

    public func read(_ key: BlobKey, offset: Int64, length: Int64, chunkSize: Int) async throws -> BlobChunks {
        guard offset >= 0 else { throw DomainError.invalid("offset", "must not be negative") }
        guard length >= 0 else { throw DomainError.invalid("length", "must not be negative") }
        guard chunkSize > 0 else { throw DomainError.invalid("chunk_size", "must be positive") }
        let last = length > Int64.max - offset ? nil : offset + length - 1
        let response = try await storageErrors { () -> HTTPStreamingResponse? in
            do {
                guard length > 0 else {
                    // Nothing to read: still a missing blob is an error.
                    guard try await size(of: key) != nil else { throw DomainError.notFound("blob \(key)") }
                    return nil
                }
                return try await client.stream(
                    .init(operation: "GetObject", method: "GET", path: path(key.value), headers: [("Range", "bytes=\(offset)-\(last.map(String.init) ?? "")")]),
                    payloadHash: SigV4Signer.emptyPayloadHash
                )
            } catch let error as AWSError where error.status == 404 {
                throw DomainError.notFound("blob \(key)")
            } catch let error as AWSError where error.status == 416 {
                return nil  // the range starts at or past the end (or the blob is empty): nothing to read
            }
        }
        guard let response else { return BlobChunks { nil } }
        // The range is clamped to the blob's end: its length is what the reply says it holds.
        let expected = response.body.length ?? (last.map { $0 - offset + 1 } ?? 0)
        let reader = Rechunker(body: response.body, chunkSize: chunkSize, expected: expected)
        return BlobChunks { try await reader.next() }
    }

    public func delete(_ key: BlobKey) async throws {
        try await storageErrors {
            _ = try await client.send(.init(operation: "DeleteObject", method: "DELETE", path: path(key.value)))
        }
    }

    /// A presigned `GET` of the blob valid for `seconds`, answered with `contentType` and as an attachment named
    /// `filename` (S3's `response-content-type` and `response-content-disposition`).
    public func downloadURL(for key: BlobKey, filename: String, contentType: String, seconds: Int) async throws -> String? {
        try await storageErrors {
            let disposition = "attachment; filename=\"\(filename.filter { $0 != "\"" && $0 != "\\" })\""
            let query = "response-content-disposition=\(SigV4Signer.encode(disposition))&response-content-type=\(SigV4Signer.encode(contentType))"
            return try await client.presignedURL(method: "GET", path: path(key.value), query: query, expiresInSeconds: seconds)
        }
    }

    // MARK: Publishing (for S3BlobUpload)

    /// Headers of a new object: its type, encryption and the content hash as user metadata.
    func objectHeaders(_ key: BlobKey) -> [(name: String, value: String)] {
        var headers: [(name: String, value: String)] = [
            ("Content-Type", FileExtension.contentType(of: key)), ("x-amz-meta-sha256", key.hash.hex),
        ]
        if let encryption = settings.serverSideEncryption {
            headers.append(("x-amz-server-side-encryption", encryption))
            if let kms = settings.kmsKeyID { headers.append(("x-amz-server-side-encryption-aws-kms-key-id", kms)) }
        }
        return headers
    }

    /// A create-only `PUT` of the spooled bytes; false when the object already existed.
    func putObject(_ key: BlobKey, from spool: SpoolFile, size: Int64) async throws -> Bool {
        do {
            _ = try await client.stream(
                .init(operation: "PutObject", method: "PUT", path: path(key.value), headers: objectHeaders(key) + [("If-None-Match", "*")]),
                payloadHash: key.hash.hex, body: { spool.body(offset: 0, length: size) }
            ).collect(upTo: 1 << 20)
            return true
        } catch let error as AWSError where error.code == "PreconditionFailed" || error.status == 412 {
            return false
        }
    }

    /// A multipart upload of the spooled bytes, aborted on failure; false when the object already existed.
    func putMultipart(_ key: BlobKey, from spool: SpoolFile, size: Int64, partHashes: [String]) async throws -> Bool {
        // Checked first, so stored bytes are not sent again (and for stores that ignore If-None-Match on
        // completion; the bytes of a content address are the same whoever writes them).
        if try await self.size(of: key) != nil { return false }
        let path = path(key.value)
        let created = try await client.send(.init(
            operation: "CreateMultipartUpload", method: "POST", path: path, query: "uploads=", headers: objectHeaders(key)
        ))
        guard let uploadID = try XMLDocument(parsing: created.body).root.text(at: "UploadId"), !uploadID.isEmpty else {
            throw AWSError(kind: .reply, service: "s3", operation: "CreateMultipartUpload", code: "MalformedReply", message: "no UploadId")
        }
        let uploadQuery = "uploadId=\(SigV4Signer.encode(uploadID))"
        do {
            var etags: [String] = []
            for (index, partHash) in partHashes.enumerated() {
                let offset = Int64(index) * settings.partSize
                let length = min(settings.partSize, size - offset)
                let response = try await client.stream(
                    .init(operation: "UploadPart", method: "PUT", path: path, query: "partNumber=\(index + 1)&\(uploadQuery)"),
                    payloadHash: partHash, body: { spool.body(offset: offset, length: length) }
                )
                _ = try await response.collect(upTo: 1 << 20)
                guard let etag = response.header("etag") else {
                    throw AWSError(kind: .reply, service: "s3", operation: "UploadPart", code: "MalformedReply", message: "no ETag")
                }
                etags.append(etag)
            }
            let parts = etags.enumerated().map { "<Part><PartNumber>\($0.offset + 1)</PartNumber><ETag>\(Self.escape($0.element))</ETag></Part>" }
            let body = Array("<CompleteMultipartUpload>\(parts.joined())</CompleteMultipartUpload>".utf8)
            do {
                let completed = try await client.send(.init(
                    operation: "CompleteMultipartUpload", method: "POST", path: path, query: uploadQuery,
                    headers: [("Content-Type", "application/xml"), ("If-None-Match", "*")], body: body
                ))
                // S3 may answer 200 and still report an error in the body.
                if let document = try? XMLDocument(parsing: completed.body), document.root.name == "Error" {
                    throw AWSError(kind: .reply, service: "s3", operation: "CompleteMultipartUpload", status: 200,
                                   code: document.root.text(at: "Code") ?? "InternalError", message: document.root.text(at: "Message") ?? "")
                }
                return true
            } catch let error as AWSError where error.code == "PreconditionFailed" || error.status == 412 {
                await abortMultipart(path: path, query: uploadQuery)
                return false
            }
        } catch {
            await abortMultipart(path: path, query: uploadQuery)
            throw error
        }
    }

    /// AbortMultipartUpload, so S3 drops the parts stored so far (it keeps, and bills, the parts of an upload
    /// neither completed nor aborted). Sent from a task of its own: when the upload failed because its call was
    /// cancelled (the client went away), a request from the cancelled task would be cancelled too. Should the
    /// abort itself fail, the upload's own error is the one reported.
    private func abortMultipart(path: String, query: String) async {
        let client = client
        _ = try? await Task {
            try await client.send(.init(operation: "AbortMultipartUpload", method: "DELETE", path: path, query: query))
        }.value
    }

    static func escape(_ text: String) -> String {
        text.replacingAll("&", "&amp;").replacingAll("<", "&lt;").replacingAll(">", "&gt;").replacingAll("\"", "&quot;")
    }
}

/// One upload: spooled and hashed as it arrives, published to S3 by `publish`.
final class S3BlobUpload: BlobUpload {
    private struct State {
        var size: Int64 = 0
        let whole = SHA256Hasher()
        var part = SHA256Hasher()
        var partFill: Int64 = 0
        var partHashes: [String] = []
        var result: (hash: ContentHash, size: Int64)?
        var ended = false
    }

    private let store: S3BlobStore
    private let spool: SpoolFile
    // One task uses an upload at a time (write, finish, then publish or abort); the lock only makes that safe.
    private let state = Mutex<State>(State())

    init(store: S3BlobStore, spool: SpoolFile) {
        self.store = store
        self.spool = spool
    }

    func write(_ chunk: [UInt8]) async throws {
        try state.withLock { state in
            guard state.result == nil, !state.ended else { throw DomainError(.failedPrecondition, "write after the upload finished") }
        }
        try await spool.append(chunk)
        let partSize = store.settings.partSize
        state.withLock { state in
            state.whole.update(chunk)
            var rest = chunk[...]
            while !rest.isEmpty {
                let n = Int(min(Int64(rest.count), partSize - state.partFill))
                rest.prefix(n).withUnsafeBytes { state.part.update($0) }
                state.partFill += Int64(n)
                rest = rest.dropFirst(n)
                if state.partFill == partSize {
                    state.partHashes.append(Hex.lowercase(state.part.finalize()))
                    state.partFill = 0
                }
            }
            state.size += Int64(chunk.count)
        }
    }

    func finish() async throws -> (hash: ContentHash, size: Int64) {
        state.withLock { state in
            if let result = state.result { return result }
            if state.partFill > 0 { state.partHashes.append(Hex.lowercase(state.part.finalize())) }
            let result = (ContentHash(digest: state.whole.finalize()), state.size)
            state.result = result
            return result
        }
    }

    func publish(as key: BlobKey) async throws -> Bool {
        let (result, partHashes, ended) = state.withLock { ($0.result, $0.partHashes, $0.ended) }
        guard !ended else { throw DomainError(.failedPrecondition, "publish of an upload already published or aborted") }
        guard let result, key.hash == result.hash else {
            throw DomainError(.failedPrecondition, "publish of bytes that are not finished or not \(key)")
        }
        let written = try await storageErrors {
            result.size > store.settings.multipartThreshold
                ? try await store.putMultipart(key, from: spool, size: result.size, partHashes: partHashes)
                : try await store.putObject(key, from: spool, size: result.size)
        }
        state.withLock { $0.ended = true }
        return written
    }

    func abort() async {
        state.withLock { $0.ended = true }
    }
}

/// Hands a response body on in chunks of exactly `chunkSize` (the last one shorter), and fails if the body ends
/// before `expected` bytes.
private final class Rechunker: Sendable {
    private let body: HTTPBodySource
    private let chunkSize: Int
    private let state: Mutex<(pending: [UInt8], delivered: Int64, done: Bool)>
    private let expected: Int64

    init(body: HTTPBodySource, chunkSize: Int, expected: Int64) {
        self.body = body
        self.chunkSize = chunkSize
        self.expected = expected
        state = Mutex(([], 0, false))
    }

    func next() async throws -> [UInt8]? {
        var (pending, delivered, done) = state.withLock { $0 }
        while pending.count < chunkSize && !done {
            do {
                if let chunk = try await body.next() { pending += chunk } else { done = true }
            } catch {
                throw DomainError(.unavailable, "reading the blob from S3 failed: \(error)")
            }
        }
        guard !pending.isEmpty else {
            guard delivered == expected else {
                throw DomainError(.unavailable, "S3 sent \(delivered) of \(expected) bytes of the blob")
            }
            return nil
        }
        let chunk = Array(pending.prefix(chunkSize))
        pending.removeFirst(chunk.count)
        delivered += Int64(chunk.count)
        state.withLock { $0 = (pending, delivered, done) }
        return chunk
    }
}

extension String {
    fileprivate func replacingAll(_ target: String, _ replacement: String) -> String {
        split(separator: target, omittingEmptySubsequences: false).joined(separator: replacement)
    }
}
