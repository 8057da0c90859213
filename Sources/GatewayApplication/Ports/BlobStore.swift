/// Where file bytes live, by content address. Blobs appear atomically: a reader sees all of a blob or none.
public protocol BlobStore: Sendable {
    /// Starts writing a new blob into temporary space.
    func beginUpload() async throws -> any BlobUpload

    /// The size of the blob under `key`, or nil when there is none.
    func size(of key: BlobKey) async throws -> Int64?

    /// The bytes `offset ..< offset + length` of the blob (clamped to its end), in chunks of at most
    /// `chunkSize` bytes, read as the consumer asks for them. `.notFound` when there is no such blob.
    func read(_ key: BlobKey, offset: Int64, length: Int64, chunkSize: Int) async throws -> BlobChunks

    /// Removes the blob (nothing happens when there is none).
    func delete(_ key: BlobKey) async throws

    /// Up to `limit` keys of stored blobs after `after` (nil: from the first), in ascending order of
    /// `BlobKey.value`; what the store holds that is not a blob (temporary uploads, foreign objects) is left out.
    func keys(after: BlobKey?, limit: Int) async throws -> [BlobKey]

    /// A URL that downloads the blob directly from the store, without a token, for `seconds` (served with
    /// `contentType`, as an attachment named `filename`); nil when the store has none and the gateway serves
    /// its own signed links.
    func downloadURL(for key: BlobKey, filename: String, contentType: String, seconds: Int) async throws -> String?
}

extension BlobStore {
    public func downloadURL(for key: BlobKey, filename: String, contentType: String, seconds: Int) async throws -> String? { nil }
}

/// One upload in progress. Used by one task at a time: write, finish, then publish or abort.
public protocol BlobUpload: Sendable {
    /// Appends bytes to the temporary blob.
    func write(_ chunk: [UInt8]) async throws

    /// Makes the written bytes durable (fsync) and says what they are.
    func finish() async throws -> (hash: ContentHash, size: Int64)

    /// Moves the finished bytes to `key` atomically. Returns false when a blob already was there: the bytes
    /// are then not written again (deduplication) and the temporary copy is removed.
    func publish(as key: BlobKey) async throws -> Bool

    /// Removes the temporary bytes; safe in any state and more than once.
    func abort() async
}

/// The chunks of a blob read, pulled one at a time.
public struct BlobChunks: AsyncSequence, Sendable {
    public typealias Element = [UInt8]
    private let next: @Sendable () async throws -> [UInt8]?

    /// `next` returns the following chunk, or nil at the end.
    public init(next: @escaping @Sendable () async throws -> [UInt8]?) {
        self.next = next
    }

    public func makeAsyncIterator() -> Iterator { Iterator(next: next) }

    public struct Iterator: AsyncIteratorProtocol {
        let next: @Sendable () async throws -> [UInt8]?
        public mutating func next() async throws -> [UInt8]? { try await next() }
    }
}

/// The per-owner file records, and the reference counts that decide when a blob may go. A blob is referenced
/// by every record with its key and held by every upload about to record it; the use cases delete a blob only
/// through `deleteBlob`, which makes sure nothing references or holds it, in every process sharing the store.
///
/// The protocol an upload follows: `pin(key)`, publish the bytes, `create` the record, `unpin(key)`. A
/// deletion: `delete(id:)`, and when no reference remains, `deleteBlob(key)`. A `pin` waits while a deletion of
/// its blob runs, so the upload publishes the bytes again after it; a deletion never starts while a pin is
/// held. No interleaving of the two loses bytes a record references.
public protocol FileRepository: Sendable {
    /// Stores a new record with the domain events it causes.
    func create(_ file: FileRecord, recording events: [PendingEvent]) async throws

    func file(id: ULID) async throws -> FileRecord?

    /// Up to `limit` of the owner's records with ids after `after`, ascending.
    func list(owner: String, after: ULID?, limit: Int) async throws -> [FileRecord]

    /// Removes the record (`.notFound` when there is none) with its domain events; returns it and how many
    /// references (records and holds) its key still has.
    func delete(id: ULID, recording events: [PendingEvent]) async throws -> (file: FileRecord, remainingReferences: Int)

    /// How many records reference `key`, plus the holds on it.
    func references(to key: BlobKey) async throws -> Int

    /// Holds the blob under `key` for an upload about to publish and record it: it counts as a reference until
    /// `unpin`. Waits while a deletion of the blob is finishing.
    func pin(_ key: BlobKey) async throws

    /// Gives back a hold taken with `pin`; returns the references left.
    func unpin(_ key: BlobKey) async throws -> Int

    /// Runs `delete` (which removes the blob's bytes) when nothing references or holds `key`, while every `pin`
    /// of `key` waits. Returns whether it ran.
    @discardableResult
    func deleteBlob(_ key: BlobKey, using delete: @Sendable () async throws -> Void) async throws -> Bool
}
