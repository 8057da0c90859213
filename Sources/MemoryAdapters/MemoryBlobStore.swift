import GatewayApplication
import OpenSSLCrypto
import Synchronization

/// Blobs in process memory: the reference behaviour of `BlobStore`, for unit tests. An upload keeps its bytes
/// to itself until `publish` adds them under the lock, so no reader sees them before.
public final class MemoryBlobStore: BlobStore {
    private let blobs = Mutex<[BlobKey: [UInt8]]>([:])

    public init() {}

    /// The keys of the stored blobs, in no particular order.
    public var keys: [BlobKey] { blobs.withLock { Array($0.keys) } }

    public func beginUpload() async throws -> any BlobUpload {
        MemoryBlobUpload(store: self)
    }

    public func size(of key: BlobKey) async throws -> Int64? {
        blobs.withLock { $0[key].map { Int64($0.count) } }
    }

    public func keys(after: BlobKey?, limit: Int) async throws -> [BlobKey] {
        let sorted = keys.sorted { $0.value < $1.value }
        return Array(sorted.filter { after == nil || $0.value > after!.value }.prefix(limit))
    }

    /// Stores `bytes` under `key` directly, as a blob left behind without a record (tests of the sweep).
    public func storeUnreferenced(_ bytes: [UInt8], as key: BlobKey) {
        blobs.withLock { $0[key] = bytes }
    }

    public func read(_ key: BlobKey, offset: Int64, length: Int64, chunkSize: Int) async throws -> BlobChunks {
        guard offset >= 0 else { throw DomainError.invalid("offset", "must not be negative") }
        guard length >= 0 else { throw DomainError.invalid("length", "must not be negative") }
        guard chunkSize > 0 else { throw DomainError.invalid("chunk_size", "must be positive") }
        guard let bytes = blobs.withLock({ $0[key] }) else { throw DomainError.notFound("blob \(key)") }
        let size = Int64(bytes.count)
        let start = min(offset, size)
        let end = length > size - start ? size : start + length
        let position = Mutex(Int(start))
        return BlobChunks {
            position.withLock { position in
                guard position < Int(end) else { return nil }
                let chunk = Array(bytes[position..<position + min(chunkSize, Int(end) - position)])
                position += chunk.count
                return chunk
            }
        }
    }

    public func delete(_ key: BlobKey) async throws {
        _ = blobs.withLock { $0.removeValue(forKey: key) }
    }

    /// Stores `bytes` under `key` unless a blob is there; true when it was not.
    fileprivate func insert(_ bytes: [UInt8], as key: BlobKey) -> Bool {
        blobs.withLock { blobs in
            guard blobs[key] == nil else { return false }
            blobs[key] = bytes
            return true
        }
    }
}

/// An upload whose bytes stay in this object until published.
private final class MemoryBlobUpload: BlobUpload {
    private enum Phase {
        case writing([UInt8], SHA256Hasher)
        case finished([UInt8], ContentHash)
        /// Published or aborted.
        case ended
    }

    private let store: MemoryBlobStore
    private let phase = Mutex(Phase.writing([], SHA256Hasher()))

    init(store: MemoryBlobStore) {
        self.store = store
    }

    func write(_ chunk: [UInt8]) async throws {
        try phase.withLock { phase in
            guard case .writing(var bytes, let hasher) = phase else { throw MemoryBlobUploadMisuse("write after finish") }
            phase = .ended  // so that `bytes` is the only reference and appending does not copy them
            bytes += chunk
            hasher.update(chunk)
            phase = .writing(bytes, hasher)
        }
    }

    func finish() async throws -> (hash: ContentHash, size: Int64) {
        try phase.withLock { phase in
            switch phase {
            case .writing(let bytes, let hasher):
                let hash = ContentHash(digest: hasher.finalize())
                phase = .finished(bytes, hash)
                return (hash, Int64(bytes.count))
            case .finished(let bytes, let hash):
                return (hash, Int64(bytes.count))
            case .ended:
                throw MemoryBlobUploadMisuse("finish after publish or abort")
            }
        }
    }

    func publish(as key: BlobKey) async throws -> Bool {
        try phase.withLock { phase in
            guard case .finished(let bytes, let hash) = phase else { throw MemoryBlobUploadMisuse("publish before finish") }
            guard key.hash == hash else { throw MemoryBlobUploadMisuse("cannot publish bytes with hash \(hash) as \(key)") }
            phase = .ended
            return store.insert(bytes, as: key)
        }
    }

    func abort() async {
        phase.withLock { $0 = .ended }
    }
}

/// An upload used out of order, or published under the key of other bytes: a bug in the caller.
struct MemoryBlobUploadMisuse: Error, CustomStringConvertible {
    let description: String

    init(_ description: String) {
        self.description = description
    }
}
