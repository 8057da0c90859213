/// The file use cases: content-addressed, deduplicated blobs with per-owner records. Callers act on their
/// own files; the `admin` claim on any. A blob is stored once however many records reference it, and is
/// deleted with the last one.
public struct FileLibrary: Sendable {
    public struct Settings: Sendable {
        /// Uploads larger than this are refused (`RESOURCE_EXHAUSTED`).
        public var maximumFileSize: Int64 = 4 << 30
        /// Download chunk size (each chunk is one gRPC message).
        public var chunkSize = 64 * 1024
        public var defaultLinkLifetimeSeconds: Int64 = 15 * 60
        public var maximumLinkLifetimeSeconds: Int64 = 7 * 86_400

        public static var defaults: Settings { Settings() }

        public static func defaults(configure: (inout Settings) -> Void) -> Settings {
            var settings = Settings()
            configure(&settings)
            return settings
        }
    }

    private let files: any FileRepository
    private let blobs: any BlobStore
    private let clock: any WallClock
    private let ids: any IDGenerator
    private let pageTokens: any TokenSealer
    private let linkSigner: any MessageSigner
    private let domainEvents: any DomainEventEncoder
    private let settings: Settings

    public init(
        files: any FileRepository, blobs: any BlobStore, clock: any WallClock, ids: any IDGenerator,
        pageTokens: any TokenSealer, linkSigner: any MessageSigner, domainEvents: any DomainEventEncoder,
        settings: Settings = .defaults
    ) {
        self.files = files
        self.blobs = blobs
        self.clock = clock
        self.ids = ids
        self.pageTokens = pageTokens
        self.linkSigner = linkSigner
        self.domainEvents = domainEvents
        self.settings = settings
    }

    /// Stores the bytes of `chunks` under their content address and records them as the caller's file.
    /// Nothing is visible until the bytes are durable and their size and hash check out; a failed or
    /// cancelled upload leaves nothing behind.
    public func upload<Chunks: AsyncSequence>(
        _ header: FileHeader, chunks: Chunks, caller: Principal
    ) async throws -> (file: FileRecord, deduplicated: Bool) where Chunks.Element == [UInt8] {
        let upload = try await blobs.beginUpload()
        do {
            var prefix: [UInt8] = []
            var received: Int64 = 0
            for try await chunk in chunks {
                received += Int64(chunk.count)
                guard received <= settings.maximumFileSize else {
                    throw DomainError(.resourceExhausted, "the file is larger than \(settings.maximumFileSize) bytes")
                }
                // Refused as soon as it is too long, not after reading (and storing) the rest.
                if let expected = header.expectedSize, received > expected {
                    throw DomainError.invalid("header.expected_size", "is \(expected) but more bytes arrived")
                }
                if prefix.count < ContentSniffer.prefixLength {
                    prefix += chunk.prefix(ContentSniffer.prefixLength - prefix.count)
                }
                try await upload.write(chunk)
            }
            let (hash, size) = try await upload.finish()
            if let expected = header.expectedSize, expected != size {
                throw DomainError.invalid("header.expected_size", "is \(expected) but \(size) bytes arrived")
            }
            if let expected = header.expectedHash, expected != hash {
                throw DomainError.invalid("header.expected_sha256", "is \(expected) but the bytes that arrived hash to \(hash)")
            }
            // The key depends on the bytes alone, so the same bytes always deduplicate.
            let sniffed = ContentSniffer.contentType(of: prefix)
            let key = BlobKey(hash: hash, fileExtension: FileExtension.forKey(contentType: sniffed))
            let file = FileRecord(
                id: ids.ulid(), key: key, size: size, contentType: header.contentType.isEmpty ? sniffed : header.contentType,
                filename: header.filename, ownerID: caller.uid, metadata: header.metadata, createdAt: clock.now()
            )
            // Held from before the bytes are published until the record references them: no deletion, in this
            // process or another, can remove them in between (see FileRepository).
            try await files.pin(key)
            let written: Bool
            do {
                written = try await upload.publish(as: key)
                try await files.create(file, recording: [try event(.fileUploaded(file, deduplicated: !written))])
            } catch {
                // The hold must go even when the call was cancelled: a task of its own, whose storage calls run.
                try? await Task { try await release(key) }.value
                throw error
            }
            // The record references the blob now. The upload has succeeded whatever happens to its hold: should
            // giving it back fail, the blob keeps one reference too many (kept, never lost).
            try? await Task { try await release(key) }.value
            return (file, !written)
        } catch {
            await upload.abort()
            throw error
        }
    }

    public func info(id: String, caller: Principal) async throws -> FileRecord {
        try await ownFile(id, caller)
    }

    /// The file's record and the bytes `offset ..< offset + length` (`length` 0: to the end).
    public func download(id: String, offset: Int64, length: Int64, caller: Principal) async throws -> (file: FileRecord, chunks: BlobChunks) {
        let file = try await ownFile(id, caller)
        guard offset >= 0 else { throw DomainError.invalid("offset", "must not be negative") }
        guard length >= 0 else { throw DomainError.invalid("length", "must not be negative") }
        guard offset <= file.size else { throw DomainError.invalid("offset", "is past the end of the file (\(file.size) bytes)") }
        let count = length == 0 ? file.size - offset : min(length, file.size - offset)
        return (file, try await blobs.read(file.key, offset: offset, length: count, chunkSize: settings.chunkSize))
    }

    /// The caller's files, a page at a time.
    public func list(pageSize: Int32, pageToken: String, caller: Principal) async throws -> UserAccounts.Page<FileRecord> {
        let limit = try PageSize.resolve(pageSize)
        let scope = Array(caller.uid.utf8)
        let after = pageToken.isEmpty ? nil : try PageToken.open(pageToken, listing: .files, flags: 0, scope: scope, with: pageTokens)
        let found = try await files.list(owner: caller.uid, after: after, limit: limit + 1)
        let page = Array(found.prefix(limit))
        let next = found.count > limit
            ? page.last.map { PageToken(listing: .files, flags: 0, after: $0.id, scope: scope).sealed(with: pageTokens) }
            : nil
        return .init(items: page, nextPageToken: next)
    }

    /// Removes the record, and the blob with the last record that references it.
    public func delete(id: String, caller: Principal) async throws {
        let file = try await ownFile(id, caller)
        let (removed, remaining) = try await files.delete(id: file.id, recording: [try event(.fileDeleted(file))])
        if remaining == 0 { try await deleteBlob(removed.key) }
    }

    /// Gives back an upload's hold on `key`, deleting the blob if that was its last reference (its record
    /// failed, or was deleted meanwhile).
    private func release(_ key: BlobKey) async throws {
        if try await files.unpin(key) == 0 { try await deleteBlob(key) }
    }

    /// Deletes the blobs that no record references and no upload holds: what an I/O failure or a crash left
    /// between publishing an upload's bytes and recording them (or between deleting the last record and its
    /// blob). Safe while the gateway serves: a deletion goes through `deleteBlob`, which rechecks references
    /// and holds, and an upload holds its key from before it publishes. Returns how many it deleted.
    public func sweepUnreferencedBlobs(batch: Int = 1000) async throws -> Int {
        var removed = 0
        var after: BlobKey?
        while true {
            let keys = try await blobs.keys(after: after, limit: batch)
            for key in keys where try await files.references(to: key) == 0 {
                let blobs = blobs
                if try await files.deleteBlob(key, using: { try await blobs.delete(key) }) { removed += 1 }
            }
            guard keys.count == batch, let last = keys.last else { return removed }
            after = last
        }
    }

    private func deleteBlob(_ key: BlobKey) async throws {
        let blobs = blobs
        try await files.deleteBlob(key) { try await blobs.delete(key) }
    }

    // MARK: Download links

    /// Where a download link points.
    public enum Link: Sendable, Hashable {
        /// A path and query on the gateway's own listener (signed by the gateway).
        case gatewayPath(String)
        /// A URL of the blob store itself (e.g. an S3 presigned URL).
        case url(String)
    }

    /// A link that downloads the file's bytes without a token until `expiresAt`: the blob store's own when it
    /// has them, else one the gateway serves and signs.
    public func downloadLink(id: String, ttlSeconds: Int64, caller: Principal) async throws -> (link: Link, expiresAt: UnixTime) {
        guard ttlSeconds >= 0, ttlSeconds <= settings.maximumLinkLifetimeSeconds else {
            throw DomainError.invalid("ttl", "must be between 0 and \(settings.maximumLinkLifetimeSeconds) seconds")
        }
        let file = try await ownFile(id, caller)
        let lifetime = ttlSeconds == 0 ? settings.defaultLinkLifetimeSeconds : ttlSeconds
        let expires = clock.now().seconds + lifetime
        if let url = try await blobs.downloadURL(for: file.key, filename: file.filename, contentType: file.contentType, seconds: Int(lifetime)) {
            return (.url(url), UnixTime(seconds: expires))
        }
        // Signed over the file's id, not its bytes' key: the link dies with its record, even while another
        // record (another owner's upload of the same bytes) keeps the blob.
        let signature = linkSigner.signature(for: Self.linkMessage(id: file.id.description, expires: expires))
        return (.gatewayPath("/files/\(file.id)?expires=\(expires)&sig=\(signature)"), UnixTime(seconds: expires))
    }

    /// Why a download link is refused.
    public enum LinkRefusal: Error, Sendable, Equatable {
        /// Altered, expired or not ours: HTTP 403.
        case forbidden(String)
        /// Valid, but the blob is gone: HTTP 404.
        case gone
    }

    /// Checks a download link's path and query, and opens its file's bytes if the file still exists.
    public func openLink(id text: String, expires: String?, signature: String?) async throws -> (file: FileRecord, chunks: BlobChunks) {
        guard let expires, let seconds = Int64(expires), let signature else {
            throw LinkRefusal.forbidden("the link lacks expires or sig")
        }
        guard linkSigner.isValid(signature, for: Self.linkMessage(id: text, expires: seconds)) else {
            throw LinkRefusal.forbidden("the link's signature does not match")
        }
        guard clock.now().seconds <= seconds else { throw LinkRefusal.forbidden("the link has expired") }
        guard let id = ULID(text), let file = try await files.file(id: id) else { throw LinkRefusal.gone }
        do {
            return (file, try await blobs.read(file.key, offset: 0, length: file.size, chunkSize: settings.chunkSize))
        } catch let error as DomainError where error.code == .notFound {
            throw LinkRefusal.gone
        }
    }

    private static func linkMessage(id: String, expires: Int64) -> [UInt8] {
        Array("GET /files/\(id) \(expires)".utf8)
    }

    // MARK: Rules

    private func ownFile(_ id: String, _ caller: Principal) async throws -> FileRecord {
        guard !id.isEmpty else { throw DomainError.invalid("id", "is required") }
        guard let ulid = ULID(id) else { throw DomainError.invalid("id", "is not a ULID (26 Crockford base32 characters)") }
        guard let file = try await files.file(id: ulid) else { throw DomainError.notFound("file \(ulid)") }
        guard caller.isAdmin || file.ownerID == caller.uid else {
            throw DomainError.permissionDenied("file \(ulid) belongs to another account")
        }
        return file
    }

    private func event(_ event: DomainEvent) throws -> PendingEvent {
        try domainEvents.pending(event, id: ids.ulid(), at: clock.now())
    }
}
