import GatewayApplication
import Synchronization

/// File records in process memory, behind one lock: the reference behaviour of `FileRepository`, for unit
/// tests. Domain events go to `events` inside the same critical section.
public final class MemoryFileStore: FileRepository {
    public let events: MemoryEventStore

    private let files = Mutex<[ULID: FileRecord]>([:])
    private let holds = BlobHolds()

    public init(events: MemoryEventStore = MemoryEventStore()) {
        self.events = events
    }

    private func change<T: Sendable>(recording pending: [PendingEvent], _ change: (inout [ULID: FileRecord]) throws -> T) throws -> T {
        try events.commit(pending, in: files, change)
    }

    public func create(_ file: FileRecord, recording pending: [PendingEvent]) async throws {
        try change(recording: pending) { files in
            guard files[file.id] == nil else { throw DomainError(.alreadyExists, "file \(file.id) already exists") }
            files[file.id] = file
        }
    }

    public func file(id: ULID) async throws -> FileRecord? {
        files.withLock { $0[id] }
    }

    public func list(owner: String, after: ULID?, limit: Int) async throws -> [FileRecord] {
        files.withLock { files in
            Array(
                files.values
                    .filter { file in file.ownerID == owner && (after.map { file.id > $0 } ?? true) }
                    .sorted { $0.id < $1.id }
                    .prefix(max(0, limit))
            )
        }
    }

    public func delete(id: ULID, recording pending: [PendingEvent]) async throws -> (file: FileRecord, remainingReferences: Int) {
        try change(recording: pending) { files in
            guard let stored = files.removeValue(forKey: id) else { throw DomainError.notFound("file \(id)") }
            return (stored, files.values.count { $0.key == stored.key } + holds.holds(on: stored.key))
        }
    }

    public func references(to key: BlobKey) async throws -> Int {
        records(of: key) + holds.holds(on: key)
    }

    public func pin(_ key: BlobKey) async throws {
        await holds.pin(key)
    }

    public func unpin(_ key: BlobKey) async throws -> Int {
        holds.unpin(key) + records(of: key)
    }

    public func deleteBlob(_ key: BlobKey, using delete: @Sendable () async throws -> Void) async throws -> Bool {
        try await holds.deleteBlob(key, records: { records(of: key) }, delete: delete)
    }

    private func records(of key: BlobKey) -> Int {
        files.withLock { files in files.values.count { $0.key == key } }
    }
}
