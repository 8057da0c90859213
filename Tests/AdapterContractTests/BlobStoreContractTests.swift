import EmbeddedAdapters
import Foundation
import GatewayApplication
import MemoryAdapters
import OpenSSLCrypto
import Testing

/// The blob stores every contract test runs against.
enum BlobStoreAdapter: String, CaseIterable, Sendable, CustomTestStringConvertible {
    case memory
    case local
    /// S3, on moto.
    case s3

    var testDescription: String { rawValue }

    /// Runs `body` with a new, empty store and a function listing the store's temporary files (none in memory),
    /// and disposes of the store afterwards.
    func withStore(_ body: (any BlobStore, _ temporaryFiles: () throws -> [String]) async throws -> Void) async throws {
        switch self {
        case .memory:
            try await body(MemoryBlobStore(), { [] })
        case .local:
            try await withTemporaryDirectory { directory in
                let store = try await LocalBlobStore.open(directory: "\(directory)/blobs")
                do {
                    try await body(store, { try FileManager.default.contentsOfDirectory(atPath: "\(directory)/blobs/tmp") })
                } catch {
                    try? await store.close()
                    throw error
                }
                try await store.close()
            }
        case .s3:
            let backend = try await AWSTestBackend.make(bucket: true)
            defer { backend.close() }
            // Uploads are spooled to unnamed files: there is never a temporary file to see.
            try await body(backend.blobs!, { [] })
        }
    }
}

/// Test data for blob stores.
enum BlobTestData {
    /// `count` bytes that do not repeat with any short period, different for each `seed`.
    static func bytes(_ count: Int, seed: UInt32 = 1) -> [UInt8] {
        var state = seed | 1
        return (0..<count).map { _ in
            state ^= state << 13
            state ^= state >> 17
            state ^= state << 5
            return UInt8(truncatingIfNeeded: state)
        }
    }

    /// The key of `bytes`, hashed independently of the stores.
    static func key(of bytes: [UInt8], fileExtension: String = "bin") -> BlobKey {
        BlobKey(hash: ContentHash(digest: Digest.sha256(bytes)), fileExtension: fileExtension)
    }
}

extension BlobStore {
    /// Uploads `bytes` in writes of at most `writeSize` and publishes them under `key` (by default their own);
    /// returns the key and whether the blob is new.
    func uploadAndPublish(
        _ bytes: [UInt8], as key: BlobKey? = nil, writeSize: Int = 65_536
    ) async throws -> (key: BlobKey, created: Bool) {
        let upload = try await beginUpload()
        for start in stride(from: 0, to: bytes.count, by: writeSize) {
            try await upload.write(Array(bytes[start..<min(start + writeSize, bytes.count)]))
        }
        let (hash, _) = try await upload.finish()
        let key = key ?? BlobKey(hash: hash, fileExtension: "bin")
        do {
            return (key, try await upload.publish(as: key))
        } catch {
            await upload.abort()
            throw error
        }
    }

    /// The chunks of a read, all of them.
    func readChunks(_ key: BlobKey, offset: Int64 = 0, length: Int64 = .max, chunkSize: Int = 65_536) async throws -> [[UInt8]] {
        var chunks: [[UInt8]] = []
        for try await chunk in try await read(key, offset: offset, length: length, chunkSize: chunkSize) {
            chunks.append(chunk)
        }
        return chunks
    }
}

/// What every `BlobStore` promises.
@Suite struct BlobStoreContractTests {
    @Test(arguments: BlobStoreAdapter.allCases, [0, 1, 65_536 + 3, 3 << 20 + 17])
    func publishedBlobsReadBackIdentically(_ adapter: BlobStoreAdapter, size: Int) async throws {
        try await adapter.withStore { store, temporaryFiles in
            let bytes = BlobTestData.bytes(size)
            let upload = try await store.beginUpload()
            for start in stride(from: 0, to: size, by: 50_000) {
                try await upload.write(Array(bytes[start..<min(start + 50_000, size)]))
            }
            let (hash, written) = try await upload.finish()
            #expect(hash == ContentHash(digest: Digest.sha256(bytes)))
            #expect(written == Int64(size))
            let key = BlobKey(hash: hash, fileExtension: "bin")
            #expect(try await upload.publish(as: key))
            #expect(try await store.size(of: key) == Int64(size))
            let chunks = try await store.readChunks(key)
            #expect(chunks.count == (size + 65_535) / 65_536)
            #expect(chunks.flatMap { $0 } == bytes)
            #expect(try temporaryFiles().isEmpty)
        }
    }

    @Test(arguments: BlobStoreAdapter.allCases, [
        ("", "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"),
        ("abc", "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"),
    ])
    func finishHashesTheBytesWithSHA256(_ adapter: BlobStoreAdapter, vector: (text: String, sha256: String)) async throws {
        try await adapter.withStore { store, _ in
            let bytes = Array(vector.text.utf8)
            let upload = try await store.beginUpload()
            for byte in bytes { try await upload.write([byte]) }
            let (hash, size) = try await upload.finish()
            #expect(hash.hex == vector.sha256)
            #expect(hash == ContentHash(digest: Digest.sha256(bytes)))
            #expect(size == Int64(bytes.count))
            #expect(try await upload.finish() == (hash, size), "finish again says the same")
            await upload.abort()
        }
    }

    @Test func hasherHashesPiecesAsOneDigest() {
        let bytes = BlobTestData.bytes(100_000)
        let hasher = SHA256Hasher()
        hasher.update(Array(bytes[..<1]))
        hasher.update(Array(bytes[1..<70_000]))
        bytes[70_000...].withUnsafeBytes { hasher.update($0) }
        #expect(hasher.finalize() == Digest.sha256(bytes))
        #expect(hasher.finalize() == Digest.sha256([]), "a finalized hasher starts over")
    }

    /// The listing the orphan sweep walks: every blob once, in key order, a page at a time.
    @Test(arguments: BlobStoreAdapter.allCases)
    func keysListEveryBlobInOrderAPageAtATime(_ adapter: BlobStoreAdapter) async throws {
        try await adapter.withStore { store, _ in
            var published: [BlobKey] = []
            for seed in UInt32(1)...7 {
                published.append(try await store.uploadAndPublish(BlobTestData.bytes(100 + Int(seed), seed: seed)).key)
            }
            var listed: [BlobKey] = []
            var after: BlobKey?
            while true {
                let page = try await store.keys(after: after, limit: 3)
                #expect(page.count <= 3)
                listed += page
                guard page.count == 3, let last = page.last else { break }
                after = last
            }
            #expect(listed == published.sorted { $0.value < $1.value })
        }
    }

    @Test(arguments: BlobStoreAdapter.allCases)
    func publishingTheSameBytesAgainDeduplicates(_ adapter: BlobStoreAdapter) async throws {
        try await adapter.withStore { store, temporaryFiles in
            let bytes = BlobTestData.bytes(100_000)
            let first = try await store.uploadAndPublish(bytes)
            let second = try await store.uploadAndPublish(bytes, writeSize: 7_777)
            #expect(first.created && !second.created)
            #expect(first.key == second.key)
            #expect(try await store.readChunks(first.key).flatMap { $0 } == bytes)
            #expect(try temporaryFiles().isEmpty)
        }
    }

    @Test(arguments: BlobStoreAdapter.allCases)
    func concurrentUploadsOfTheSameBytesPublishOnce(_ adapter: BlobStoreAdapter) async throws {
        try await adapter.withStore { store, temporaryFiles in
            let bytes = BlobTestData.bytes(300_000)
            let created = try await withThrowingTaskGroup(of: Bool.self) { group in
                for _ in 0..<8 {
                    group.addTask { try await store.uploadAndPublish(bytes, writeSize: 16_384).created }
                }
                return try await group.reduce(into: [Bool]()) { $0.append($1) }
            }
            #expect(created.count == 8)
            #expect(created.filter { $0 }.count == 1)
            #expect(try await store.readChunks(BlobTestData.key(of: bytes)).flatMap { $0 } == bytes)
            #expect(try temporaryFiles().isEmpty)
        }
    }

    @Test(arguments: BlobStoreAdapter.allCases)
    func rangesAreClampedToTheEnd(_ adapter: BlobStoreAdapter) async throws {
        try await adapter.withStore { store, _ in
            let bytes = BlobTestData.bytes(1_000)
            let (key, _) = try await store.uploadAndPublish(bytes)
            let ranges: [(offset: Int64, length: Int64, expected: Range<Int>)] = [
                (0, 1_000, 0..<1_000), (10, 20, 10..<30), (999, 1, 999..<1_000), (990, 100, 990..<1_000),
                (0, .max, 0..<1_000), (500, .max, 500..<1_000), (0, 0, 0..<0), (1_000, 5, 1_000..<1_000),
                (5_000, 5, 1_000..<1_000), (.max, .max, 1_000..<1_000),
            ]
            for range in ranges {
                let read = try await store.readChunks(key, offset: range.offset, length: range.length, chunkSize: 64)
                #expect(read.flatMap { $0 } == Array(bytes[range.expected]), "offset \(range.offset), length \(range.length)")
            }
        }
    }

    @Test(arguments: BlobStoreAdapter.allCases)
    func chunksAreAtMostTheChunkSize(_ adapter: BlobStoreAdapter) async throws {
        try await adapter.withStore { store, _ in
            let bytes = BlobTestData.bytes(10_000)
            let (key, _) = try await store.uploadAndPublish(bytes, writeSize: 3_000)
            #expect(try await store.readChunks(key, chunkSize: 4_096).map(\.count) == [4_096, 4_096, 1_808])
            #expect(try await store.readChunks(key, offset: 9_997, length: 10, chunkSize: 1).map(\.count) == [1, 1, 1])
            #expect(try await store.readChunks(key, chunkSize: 10_000).map(\.count) == [10_000])
            #expect(try await store.readChunks(key, chunkSize: 1 << 20).map(\.count) == [10_000])
        }
    }

    @Test(arguments: BlobStoreAdapter.allCases)
    func missingBlobsAreNotFound(_ adapter: BlobStoreAdapter) async throws {
        try await adapter.withStore { store, _ in
            let key = BlobTestData.key(of: Array("nothing".utf8))
            #expect(try await store.size(of: key) == nil)
            let error = await #expect(throws: DomainError.self) {
                try await store.read(key, offset: 0, length: 10, chunkSize: 10)
            }
            #expect(error?.code == .notFound)
            try await store.delete(key)
        }
    }

    @Test(arguments: BlobStoreAdapter.allCases)
    func negativeOffsetsAndLengthsAreRefused(_ adapter: BlobStoreAdapter) async throws {
        try await adapter.withStore { store, _ in
            let (key, _) = try await store.uploadAndPublish(BlobTestData.bytes(10))
            for (offset, length, chunkSize) in [(-1, 5, 64), (0, -1, 64), (0, 5, 0)] as [(Int64, Int64, Int)] {
                let error = await #expect(throws: DomainError.self) {
                    try await store.read(key, offset: offset, length: length, chunkSize: chunkSize)
                }
                #expect(error?.code == .invalidArgument)
            }
        }
    }

    @Test(arguments: BlobStoreAdapter.allCases)
    func deletedBlobsAreGone(_ adapter: BlobStoreAdapter) async throws {
        try await adapter.withStore { store, _ in
            let bytes = BlobTestData.bytes(5_000)
            let (key, _) = try await store.uploadAndPublish(bytes)
            try await store.delete(key)
            #expect(try await store.size(of: key) == nil)
            await #expect(throws: DomainError.self) { try await store.readChunks(key) }
            try await store.delete(key)
            #expect(try await store.uploadAndPublish(bytes).created, "the same bytes can come back")
        }
    }

    @Test(arguments: BlobStoreAdapter.allCases)
    func blobsAreInvisibleUntilPublished(_ adapter: BlobStoreAdapter) async throws {
        try await adapter.withStore { store, _ in
            let bytes = BlobTestData.bytes(1_000)
            let key = BlobTestData.key(of: bytes)
            let upload = try await store.beginUpload()
            try await upload.write(bytes)
            #expect(try await store.size(of: key) == nil)
            _ = try await upload.finish()
            #expect(try await store.size(of: key) == nil)
            #expect(try await upload.publish(as: key))
            #expect(try await store.size(of: key) == 1_000)
        }
    }

    @Test(arguments: BlobStoreAdapter.allCases)
    func abortLeavesNothingBehind(_ adapter: BlobStoreAdapter) async throws {
        try await adapter.withStore { store, temporaryFiles in
            let bytes = BlobTestData.bytes(70_000)
            let key = BlobTestData.key(of: bytes)
            let writing = try await store.beginUpload()
            try await writing.write(bytes)
            let finished = try await store.beginUpload()
            try await finished.write(bytes)
            _ = try await finished.finish()
            let untouched = try await store.beginUpload()
            for upload in [writing, finished, untouched] {
                await upload.abort()
                await upload.abort()
            }
            #expect(try await store.size(of: key) == nil)
            #expect(try temporaryFiles().isEmpty)
            await #expect(throws: (any Error).self) { try await writing.write([1]) }
            await #expect(throws: (any Error).self) { try await finished.publish(as: key) }
            #expect(try await store.size(of: key) == nil)
        }
    }

    @Test(arguments: BlobStoreAdapter.allCases)
    func uploadsRefuseCallsOutOfOrderAndForeignKeys(_ adapter: BlobStoreAdapter) async throws {
        try await adapter.withStore { store, temporaryFiles in
            let bytes = BlobTestData.bytes(1_000)
            let otherKey = BlobTestData.key(of: Array("other".utf8))
            let upload = try await store.beginUpload()
            try await upload.write(bytes)
            await #expect(throws: (any Error).self, "publish before finish") { try await upload.publish(as: BlobTestData.key(of: bytes)) }
            _ = try await upload.finish()
            await #expect(throws: (any Error).self, "write after finish") { try await upload.write([1]) }
            await #expect(throws: (any Error).self, "another hash's key") { try await upload.publish(as: otherKey) }
            #expect(try await store.size(of: otherKey) == nil)
            #expect(try await upload.publish(as: BlobTestData.key(of: bytes, fileExtension: "dat")))
            await #expect(throws: (any Error).self, "publish twice") { try await upload.publish(as: BlobTestData.key(of: bytes)) }
            await upload.abort()
            #expect(try await store.size(of: BlobTestData.key(of: bytes, fileExtension: "dat")) == 1_000, "abort after publish keeps the blob")
            #expect(try temporaryFiles().isEmpty)
        }
    }
}
