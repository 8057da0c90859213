#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import GatewayApplication
import NIOPosix
import Synchronization

/// Blobs as files under one directory: each at `<directory>/<key>` (e.g. `ab/<sha256>.png`). Uploads are
/// written to `<directory>/tmp/`, on the same file system, and get their final name only once complete and
/// fsynced, so a reader sees all of a blob or none. File calls block, so they run on threads this type owns,
/// never on Swift's cooperative pool. Call `close()` when done.
public final class LocalBlobStore: BlobStore {
    /// The directory holding the blobs.
    public let directory: String
    /// How many temporary files `open` found and removed: uploads that never ended (the process died).
    public let removedOrphans: Int
    /// Where uploads are written until they are published.
    let temporaryDirectory: String
    private let threads: NIOThreadPool
    private let isClosed = Mutex(false)

    private init(directory: String, threads: NIOThreadPool, removedOrphans: Int) {
        self.directory = directory
        self.temporaryDirectory = Self.temporaryDirectory(in: directory)
        self.threads = threads
        self.removedOrphans = removedOrphans
    }

    /// Opens the store in `directory` (whose parent must exist), creating its folders when needed and removing
    /// the temporary files of uploads that never ended. `threads` run the file calls.
    public static func open(directory: String, threads count: Int = 4) async throws -> LocalBlobStore {
        let threads = NIOThreadPool(numberOfThreads: max(1, count))
        threads.start()
        do {
            let removed = try await run(on: threads, directory: directory) { try prepare(directory) }
            return LocalBlobStore(directory: directory, threads: threads, removedOrphans: removed)
        } catch {
            try? await threads.shutdownGracefully()
            throw error
        }
    }

    deinit {
        // Only if `close()` was never called: let the threads end.
        threads.shutdownGracefully { _ in }
    }

    /// Lets the file calls under way finish and stops the threads. Calls made after it fail with
    /// `StorageError` `.closed`; calling it again does nothing.
    public func close() async throws {
        let wasOpen = isClosed.withLock { closed in
            defer { closed = true }
            return !closed
        }
        guard wasOpen else { return }
        try await threads.shutdownGracefully()
    }

    private static func temporaryDirectory(in directory: String) -> String { "\(directory)/tmp" }

    /// Creates the folders, including all 256 fan-out folders, and empties `tmp/`; returns how many files it removed.
    private static func prepare(_ directory: String) throws -> Int {
        var created = try FileSystem.makeDirectory(directory)
        let temporary = temporaryDirectory(in: directory)
        _ = try FileSystem.makeDirectory(temporary)
        // Creating the fan-out folders here, once, means a publish never has to make a new folder's name
        // durable in the parent before its blob's name.
        for byte in 0...255 {
            let hex = String(byte, radix: 16)
            created = try FileSystem.makeDirectory("\(directory)/\(hex.count == 1 ? "0" : "")\(hex)") || created
        }
        if created { try FileSystem.syncDirectory(directory) }
        let orphans = try FileSystem.names(in: temporary)
        for name in orphans { try FileSystem.removeFile("\(temporary)/\(name)") }
        return orphans.count
    }

    func path(of key: BlobKey) -> String { "\(directory)/\(key.value)" }

    /// Runs `body` on the store's threads. It runs even when the calling task is cancelled (file calls are short),
    /// so that an upload aborted in a cancelled task still removes its temporary file.
    func run<T: Sendable>(_ body: @escaping @Sendable () throws -> T) async throws -> T {
        try await Self.run(on: threads, directory: directory, body)
    }

    private static func run<T: Sendable>(
        on threads: NIOThreadPool, directory: String, _ body: @escaping @Sendable () throws -> T
    ) async throws -> T {
        try await withCheckedThrowingContinuation { continuation in
            threads.submit { state in
                guard case .active = state else {
                    continuation.resume(throwing: StorageError(.closed, "the blob store in \(directory) is closed"))
                    return
                }
                continuation.resume(with: Result(catching: body))
            }
        }
    }

    // MARK: BlobStore

    public func beginUpload() async throws -> any BlobUpload {
        let name = (0..<2).map { _ in String(UInt64.random(in: .min ... .max), radix: 36) }.joined(separator: "-")
        let path = "\(temporaryDirectory)/\(name)"
        let file = try await run { try FileDescriptor(opening: path, flags: O_WRONLY | O_CREAT | O_EXCL, mode: 0o644) }
        return LocalBlobUpload(store: self, path: path, file: file)
    }

    public func size(of key: BlobKey) async throws -> Int64? {
        let path = path(of: key)
        return try await run { try FileSystem.size(of: path) }
    }

    public func read(_ key: BlobKey, offset: Int64, length: Int64, chunkSize: Int) async throws -> BlobChunks {
        guard offset >= 0 else { throw DomainError.invalid("offset", "must not be negative") }
        guard length >= 0 else { throw DomainError.invalid("length", "must not be negative") }
        guard chunkSize > 0 else { throw DomainError.invalid("chunk_size", "must be positive") }
        let path = path(of: key)
        let opened = try await run { () throws -> (file: FileDescriptor, size: Int64)? in
            do throws(FileSystemError) {
                let file = try FileDescriptor(opening: path, flags: O_RDONLY)
                return (file, try file.size())
            } catch where error.code == ENOENT {
                return nil
            }
        }
        guard let opened else { throw DomainError.notFound("blob \(key)") }
        let start = min(offset, opened.size)
        let end = length > opened.size - start ? opened.size : start + length
        let reader = LocalBlobReader(store: self, file: opened.file, range: start..<end, chunkSize: chunkSize)
        return BlobChunks { try await reader.next() }
    }

    public func keys(after: BlobKey?, limit: Int) async throws -> [BlobKey] {
        let directory = directory
        return try await run {
            var found: [BlobKey] = []
            // The 256 fan-out folders in order, each one's names sorted: ascending `BlobKey.value`.
            let firstFolder = after.map { String($0.value.prefix(2)) } ?? "00"
            let hex = Array("0123456789abcdef")
            for folder in (0..<256).map({ String([hex[$0 >> 4], hex[$0 & 15]]) }) where folder >= firstFolder {
                let names = try FileSystem.names(in: "\(directory)/\(folder)").sorted()
                for name in names {
                    guard let key = BlobKey(parsing: "\(folder)/\(name)") else { continue }
                    if let after, key.value <= after.value { continue }
                    found.append(key)
                    if found.count == limit { return found }
                }
            }
            return found
        }
    }

    public func delete(_ key: BlobKey) async throws {
        let path = path(of: key)
        _ = try await run { try FileSystem.removeFile(path) }
    }
}

/// One read under way: the blob's file, opened once, read a chunk at a time as the consumer asks for it.
private final class LocalBlobReader: Sendable {
    private let store: LocalBlobStore
    private let file: FileDescriptor
    private let end: Int64
    private let chunkSize: Int
    private let position: Mutex<Int64>

    init(store: LocalBlobStore, file: FileDescriptor, range: Range<Int64>, chunkSize: Int) {
        self.store = store
        self.file = file
        self.end = range.upperBound
        self.chunkSize = chunkSize
        self.position = Mutex(range.lowerBound)
    }

    func next() async throws -> [UInt8]? {
        let next = position.withLock { position -> (offset: Int64, count: Int)? in
            guard position < end else { return nil }
            let count = Int(min(Int64(chunkSize), end - position))
            defer { position += Int64(count) }
            return (position, count)
        }
        guard let next else { return nil }
        let chunk = try await store.run { [file] in try file.read(count: next.count, at: next.offset) }
        guard chunk.count == next.count else {
            // Blobs never change: someone else truncated the file.
            throw StorageError(.invalidRecord, "\(file.path) ended at byte \(next.offset + Int64(chunk.count)), before byte \(end)")
        }
        return chunk
    }
}
