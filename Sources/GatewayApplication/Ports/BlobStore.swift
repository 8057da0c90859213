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

/// The per-owner file records. A blob is referenced by every record with its key; the use cases delete a
/// blob only when the last record referencing it is gone.
public protocol FileRepository: Sendable {
    /// Stores a new record with the domain events it causes.
    func create(_ file: FileRecord, recording events: [PendingEvent]) async throws

    func file(id: ULID) async throws -> FileRecord?

    /// Up to `limit` of the owner's records with ids after `after`, ascending.
    func list(owner: String, after: ULID?, limit: Int) async throws -> [FileRecord]

    /// Removes the record (`.notFound` when there is none) with its domain events; returns it and how many
    /// records still reference its key.
    func delete(id: ULID, recording events: [PendingEvent]) async throws -> (file: FileRecord, remainingReferences: Int)

    /// How many records reference `key`.
    func references(to key: BlobKey) async throws -> Int
}
