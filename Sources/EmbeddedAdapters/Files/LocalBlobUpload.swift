#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import GatewayApplication
import OpenSSLCrypto
import Synchronization

/// An upload into the store's `tmp/` folder: hashed and counted as it is written, fsynced by `finish`, and
/// given its key's name by `publish`.
final class LocalBlobUpload: BlobUpload {
    private enum Phase {
        case writing(FileDescriptor, SHA256Hasher, size: Int64)
        case finished(ContentHash, size: Int64)
        /// A write or the fsync failed, so the file may not hold what was hashed: only `abort` is left.
        case failed
        /// Published or aborted: the temporary file is gone.
        case ended
    }

    private let store: LocalBlobStore
    private let path: String
    // Locked by the calls on the store's threads, so the hasher is only ever touched there.
    private let phase: Mutex<Phase>

    init(store: LocalBlobStore, path: String, file: FileDescriptor) {
        self.store = store
        self.path = path
        phase = Mutex(.writing(file, SHA256Hasher(), size: 0))
    }

    func write(_ chunk: [UInt8]) async throws {
        try await store.run {
            try self.phase.withLock { phase in
                guard case .writing(let file, let hasher, let size) = phase else { throw self.misuse("write", phase) }
                phase = .failed
                try chunk.withUnsafeBytes { bytes in
                    try file.writeAll(bytes)
                    hasher.update(bytes)
                }
                phase = .writing(file, hasher, size: size + Int64(chunk.count))
            }
        }
    }

    func finish() async throws -> (hash: ContentHash, size: Int64) {
        try await store.run {
            try self.phase.withLock { phase in
                switch phase {
                case .writing(let file, let hasher, let size):
                    phase = .failed
                    try file.sync()
                    let hash = ContentHash(digest: hasher.finalize())
                    phase = .finished(hash, size: size)
                    return (hash, size)
                case .finished(let hash, let size):
                    return (hash, size)
                case .failed, .ended:
                    throw self.misuse("finish", phase)
                }
            }
        }
    }

    func publish(as key: BlobKey) async throws -> Bool {
        let destination = store.path(of: key)
        let folder = String(destination[..<destination.lastIndex(of: "/")!])
        return try await store.run {
            try self.phase.withLock { phase in
                guard case .finished(let hash, _) = phase else { throw self.misuse("publish", phase) }
                guard key.hash == hash else {
                    throw BlobUploadMisuse(description: "cannot publish bytes with hash \(hash) as \(key)")
                }
                // link, not rename: rename would replace a blob already there, link fails with EEXIST instead,
                // which both leaves that blob alone and tells us the bytes were deduplicated.
                let created = try FileSystem.hardLink(self.path, as: destination)
                try FileSystem.removeFile(self.path)
                phase = .ended
                // Also when the name was taken: its publisher may not have synced the folder yet.
                try FileSystem.syncDirectory(folder)
                return created
            }
        }
    }

    func abort() async {
        // When the store is closed the file stays, and the next `open` removes it.
        try? await store.run {
            let pending = self.phase.withLock { phase in
                defer { phase = .ended }
                if case .ended = phase { return false }
                return true
            }
            if pending { try FileSystem.removeFile(self.path) }
        }
    }

    private func misuse(_ call: String, _ phase: Phase) -> BlobUploadMisuse {
        let state = switch phase {
        case .writing: "still being written"
        case .finished: "already finished"
        case .failed: "failed earlier"
        case .ended: "already published or aborted"
        }
        return BlobUploadMisuse(description: "\(call) on an upload that is \(state)")
    }
}

/// An upload used out of order, or published under the key of other bytes: a bug in the caller.
struct BlobUploadMisuse: Error, CustomStringConvertible {
    let description: String
}
