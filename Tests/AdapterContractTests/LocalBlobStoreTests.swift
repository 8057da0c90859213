import EmbeddedAdapters
import Foundation
import GatewayApplication
import Testing

/// What `LocalBlobStore` does with files, beyond the `BlobStore` contract.
@Suite struct LocalBlobStoreTests {
    /// Runs `body` with a new store in a temporary directory (`<directory>/blobs`), closing it afterwards.
    func withLocalStore(_ body: (LocalBlobStore, _ directory: String) async throws -> Void) async throws {
        try await withTemporaryDirectory { directory in
            let store = try await LocalBlobStore.open(directory: "\(directory)/blobs")
            do {
                try await body(store, "\(directory)/blobs")
            } catch {
                try? await store.close()
                throw error
            }
            try await store.close()
        }
    }

    @Test func openRemovesTheTemporaryFilesOfUnfinishedUploads() async throws {
        try await withTemporaryDirectory { parent in
            let directory = "\(parent)/blobs"
            let bytes = BlobTestData.bytes(1_000)
            let first = try await LocalBlobStore.open(directory: directory)
            #expect(first.removedOrphans == 0)
            let (key, _) = try await first.uploadAndPublish(bytes)
            let unfinished = try await first.beginUpload()
            try await unfinished.write(bytes)
            try await first.close()
            for name in ["a", "b"] {
                #expect(FileManager.default.createFile(atPath: "\(directory)/tmp/\(name)", contents: Data(bytes)))
            }

            let reopened = try await LocalBlobStore.open(directory: directory)
            #expect(reopened.removedOrphans == 3)
            #expect(try FileManager.default.contentsOfDirectory(atPath: "\(directory)/tmp").isEmpty)
            #expect(try await reopened.readChunks(key).flatMap { $0 } == bytes)
            try await reopened.close()
        }
    }

    @Test func uploadsStayInTheTemporaryFolderUntilPublished() async throws {
        try await withLocalStore { store, directory in
            let bytes = BlobTestData.bytes(100_000)
            let key = BlobTestData.key(of: bytes, fileExtension: "png")
            let upload = try await store.beginUpload()
            try await upload.write(bytes)
            _ = try await upload.finish()
            let temporary = try FileManager.default.contentsOfDirectory(atPath: "\(directory)/tmp")
            #expect(temporary.count == 1)
            #expect(try Data(contentsOf: URL(fileURLWithPath: "\(directory)/tmp/\(temporary[0])")) == Data(bytes))
            #expect(!FileManager.default.fileExists(atPath: "\(directory)/\(key.value)"))
            #expect(try await store.size(of: key) == nil)

            #expect(try await upload.publish(as: key))
            #expect(try Data(contentsOf: URL(fileURLWithPath: "\(directory)/\(key.value)")) == Data(bytes))
            #expect(try FileManager.default.contentsOfDirectory(atPath: "\(directory)/tmp").isEmpty)
        }
    }

    @Test(arguments: ["../x", "ab/../../etc/passwd", "..", "ab/..", "/etc/passwd", "ab//x", "tmp/x"])
    func keysCannotNamePathsOutsideTheBlobFolders(_ text: String) {
        #expect(BlobKey(parsing: text) == nil)
    }

    @Test func keysParseAsTheyAreWritten() throws {
        let key = BlobTestData.key(of: Array("abc".utf8), fileExtension: "png")
        #expect(key.value == "ba/ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad.png")
        #expect(BlobKey(parsing: key.value) == key)
        #expect(BlobKey(parsing: "ba/ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad/../x") == nil)
    }

    @Test func readsFetchEachChunkWhenItIsAskedFor() async throws {
        try await withLocalStore { store, directory in
            let chunkSize = 64 << 10
            let upload = try await store.beginUpload()
            var chunk = BlobTestData.bytes(chunkSize)
            for n in 0..<320 {
                chunk[0] = UInt8(n % 256)
                try await upload.write(chunk)
            }
            let (hash, size) = try await upload.finish()
            #expect(size == 20 << 20)
            let key = BlobKey(hash: hash, fileExtension: "bin")
            #expect(try await upload.publish(as: key))

            var chunks = try await store.read(key, offset: 0, length: size, chunkSize: chunkSize).makeAsyncIterator()
            var delivered = 0
            while delivered < 3, let next = try await chunks.next() {
                #expect(next.count == chunkSize && next[0] == UInt8(delivered))
                delivered += 1
            }
            #expect(delivered == 3)
            // Blobs never change, so cutting the file after the third chunk shows what is read next: only an
            // eager read would still have the fourth.
            let file = try FileHandle(forWritingTo: URL(fileURLWithPath: "\(directory)/\(key.value)"))
            try file.truncate(atOffset: UInt64(3 * chunkSize))
            try file.close()
            let error = await #expect(throws: StorageError.self) { try await chunks.next() }
            #expect(error?.code == .invalidRecord)
        }
    }

    @Test func callsAfterCloseFail() async throws {
        try await withTemporaryDirectory { parent in
            let store = try await LocalBlobStore.open(directory: "\(parent)/blobs")
            let upload = try await store.beginUpload()
            try await store.close()
            try await store.close()
            let error = await #expect(throws: StorageError.self) { try await store.size(of: BlobTestData.key(of: [])) }
            #expect(error?.code == .closed)
            await #expect(throws: StorageError.self) { try await upload.write([1]) }
            await upload.abort()
            #expect(try await LocalBlobStore.open(directory: "\(parent)/blobs").removedOrphans == 1, "the next open removes it")
        }
    }

    @Test func openFailsClearlyWhenTheParentIsMissing() async throws {
        try await withTemporaryDirectory { parent in
            let error = await #expect(throws: FileSystemError.self) {
                try await LocalBlobStore.open(directory: "\(parent)/missing/blobs")
            }
            #expect(error?.description == "mkdir \(parent)/missing/blobs: No such file or directory")
        }
    }
}
