import GatewayApplication
import MemoryAdapters
import Testing

/// Signs by reversing the message: enough to tell altered links from good ones in a unit test.
private struct ReversingSigner: MessageSigner {
    func signature(for message: [UInt8]) -> String { String(decoding: message.reversed(), as: UTF8.self).replacingSpaces() }
    func isValid(_ signature: String, for message: [UInt8]) -> Bool { signature == self.signature(for: message) }
}

extension String {
    fileprivate func replacingSpaces() -> String { String(map { $0 == " " ? "_" : $0 }) }
}

private struct Fixture {
    let files = MemoryFileStore()
    let blobs = MemoryBlobStore()
    let clock = FakeWallClock(UnixTime(seconds: 1_800_000_000))
    let library: FileLibrary

    init(maximumFileSize: Int64 = 1 << 20) {
        var settings = FileLibrary.Settings.defaults
        settings.maximumFileSize = maximumFileSize
        settings.chunkSize = 1000
        library = FileLibrary(
            files: files, blobs: blobs, clock: clock, ids: MonotonicIDGenerator(clock: clock), pageTokens: PlainSealer(),
            linkSigner: ReversingSigner(), domainEvents: TextDomainEvents(), settings: settings
        )
    }

    func upload(_ bytes: [UInt8], as caller: Principal, name: String = "f.bin", contentType: String = "", chunk: Int = 777) async throws -> (file: FileRecord, deduplicated: Bool) {
        let chunks = stride(from: 0, to: bytes.count, by: chunk).map { Array(bytes[$0..<min($0 + chunk, bytes.count)]) }
        return try await library.upload(
            try FileHeader(filename: name, contentType: contentType, metadata: ["k": "v"], expectedSize: nil, expectedSHA256: ""),
            chunks: BlobChunksOf(chunks), caller: caller
        )
    }

    func read(_ id: ULID, as caller: Principal, offset: Int64 = 0, length: Int64 = 0) async throws -> [UInt8] {
        var out: [UInt8] = []
        for try await chunk in try await library.download(id: id.description, offset: offset, length: length, caller: caller).chunks {
            #expect(chunk.count <= 1000)
            out += chunk
        }
        return out
    }
}

/// An async sequence over chunks already in memory.
private struct BlobChunksOf: AsyncSequence, Sendable {
    let chunks: [[UInt8]]
    init(_ chunks: [[UInt8]]) { self.chunks = chunks }
    func makeAsyncIterator() -> IndexingIterator<[[UInt8]]>.AsyncAdapter { .init(base: chunks.makeIterator()) }
}

extension IndexingIterator {
    fileprivate struct AsyncAdapter: AsyncIteratorProtocol {
        var base: IndexingIterator
        mutating func next() async -> Element? { base.next() }
    }
}

private let alice = Principal(uid: "alice", expiresAt: 1_900_000_000)
private let bob = Principal(uid: "bob", expiresAt: 1_900_000_000)
private let admin = Principal(uid: "root", isAdmin: true, expiresAt: 1_900_000_000)

@Suite struct FileLibraryTests {
    @Test func uploadStoresBytesUnderTheirContentAddress() async throws {
        let f = Fixture()
        let bytes = (0..<5000).map { UInt8(truncatingIfNeeded: $0 * 7) }
        let (file, deduplicated) = try await f.upload(bytes, as: alice)
        #expect(!deduplicated)
        #expect(file.size == 5000 && file.ownerID == "alice" && file.contentType == "application/octet-stream")
        #expect(file.key.value == "\(file.key.hash.hex.prefix(2))/\(file.key.hash.hex).bin")
        #expect(try await f.read(file.id, as: alice) == bytes)
        #expect(try await f.read(file.id, as: alice, offset: 4990) == Array(bytes[4990...]))
        #expect(try await f.read(file.id, as: alice, offset: 10, length: 20) == Array(bytes[10..<30]))
        #expect(try await f.read(file.id, as: alice, offset: 5000).isEmpty)
        await #expect(throws: DomainError.invalid("offset", "is past the end of the file (5000 bytes)")) {
            _ = try await f.read(file.id, as: alice, offset: 5001)
        }
    }

    @Test func magicNumbersDecideTheContentTypeUnlessOneIsGiven() async throws {
        let f = Fixture()
        let png: [UInt8] = [0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A, 1, 2, 3]
        // Split inside the magic number: detection must look across chunks.
        let (sniffed, _) = try await f.upload(png, as: alice, chunk: 3)
        #expect(sniffed.contentType == "image/png" && sniffed.key.value.hasSuffix(".png"))
        let (given, deduplicated) = try await f.upload(png, as: bob, contentType: "image/x-mine")
        #expect(given.contentType == "image/x-mine" && given.key == sniffed.key && deduplicated)
    }

    @Test func equalBytesShareABlobThatGoesWithTheLastRecord() async throws {
        let f = Fixture()
        let bytes = Array("same bytes".utf8)
        let (first, _) = try await f.upload(bytes, as: alice)
        let (second, deduplicated) = try await f.upload(bytes, as: bob)
        #expect(deduplicated && first.key == second.key)
        try await f.library.delete(id: first.id.description, caller: alice)
        #expect(try await f.blobs.size(of: first.key) == 10)
        #expect(try await f.read(second.id, as: bob) == bytes)
        try await f.library.delete(id: second.id.description, caller: bob)
        #expect(try await f.blobs.size(of: first.key) == nil)
        let log = try await f.files.events.read(after: 0, limit: 10, filter: EventFilter()).events
        #expect(log.map(\.event.type) == ["FileUploaded", "FileUploaded", "FileDeleted", "FileDeleted"])
        #expect(log.map(\.publisher) == ["alice", "bob", "alice", "bob"])
    }

    @Test func aFailedUploadLeavesNothing() async throws {
        let f = Fixture(maximumFileSize: 100)
        await #expect(throws: DomainError.self) { _ = try await f.upload(Array(repeating: 1, count: 101), as: alice) }
        await #expect(throws: DomainError.self) {
            _ = try await f.library.upload(
                try FileHeader(filename: "x", contentType: "", metadata: [:], expectedSize: 3, expectedSHA256: ""),
                chunks: BlobChunksOf([[1, 2]]), caller: alice
            )
        }
        #expect(try await f.files.list(owner: "alice", after: nil, limit: 10).isEmpty)
        #expect(try await f.files.events.lastSequence() == 0)
    }

    /// More bytes than `expected_size` (or the size limit) are refused at the first chunk past it: the rest
    /// is never read. (It used to read everything and refuse at the end.)
    @Test func anUploadLongerThanDeclaredIsRefusedAtOnce() async throws {
        for (limit, expectedSize) in [(Int64(1 << 20), Int64?(10)), (100, nil)] {
            let f = Fixture(maximumFileSize: limit)
            let chunks = CountingChunks(count: 10_000, size: 64)
            await #expect(throws: DomainError.self) {
                _ = try await f.library.upload(
                    try FileHeader(filename: "x", contentType: "", metadata: [:], expectedSize: expectedSize, expectedSHA256: ""),
                    chunks: chunks, caller: alice
                )
            }
            #expect(chunks.taken == Int(expectedSize ?? limit) / 64 + 1)
        }
    }

    /// Bytes a failure left between publishing and recording are swept; referenced ones stay.
    @Test func theSweepDeletesOnlyUnreferencedBlobs() async throws {
        let f = Fixture()
        let (kept, _) = try await f.upload([1, 2, 3], as: alice)
        let orphan = BlobKey(hash: ContentHash(digest: [UInt8](repeating: 7, count: 32)), fileExtension: "bin")
        f.blobs.storeUnreferenced([9, 9], as: orphan)
        #expect(try await f.library.sweepUnreferencedBlobs(batch: 1) == 1)
        #expect(Set(f.blobs.keys) == [kept.key])
        #expect(try await f.read(kept.id, as: alice) == [1, 2, 3])
        #expect(try await f.library.sweepUnreferencedBlobs() == 0)
    }

    @Test func filesAreTheirOwnersUnlessAdmin() async throws {
        let f = Fixture()
        let (file, _) = try await f.upload([1, 2, 3], as: alice)
        await #expect(throws: DomainError.permissionDenied("file \(file.id) belongs to another account")) {
            _ = try await f.library.info(id: file.id.description, caller: bob)
        }
        await #expect(throws: DomainError.self) { try await f.library.delete(id: file.id.description, caller: bob) }
        #expect(try await f.library.list(pageSize: 0, pageToken: "", caller: bob).items.isEmpty)
        #expect(try await f.library.info(id: file.id.description, caller: admin) == file)
    }

    @Test func downloadLinksExpireAndRefuseAlterations() async throws {
        let f = Fixture()
        let (file, _) = try await f.upload([9, 8, 7], as: alice)
        let (link, expiresAt) = try await f.library.downloadLink(id: file.id.description, ttlSeconds: 60, caller: alice)
        #expect(expiresAt == f.clock.now().adding(seconds: 60))
        guard case .gatewayPath(let path) = link else {
            Issue.record("the memory blob store has no URLs of its own: the gateway signs the link")
            return
        }
        let query = path.split(separator: "?")[1].split(separator: "&").map { $0.split(separator: "=").map(String.init) }
        let expires = query[0][1]
        let signature = query[1][1]
        let id = file.id.description
        #expect(path.hasPrefix("/files/\(id)?"))
        let opened = try await f.library.openLink(id: id, expires: expires, signature: signature)
        #expect(opened.file == file)
        await #expect(throws: FileLibrary.LinkRefusal.forbidden("the link's signature does not match")) {
            _ = try await f.library.openLink(id: id, expires: String(Int(expires)! + 1), signature: signature)
        }
        f.clock.advance(seconds: 61)
        await #expect(throws: FileLibrary.LinkRefusal.forbidden("the link has expired")) {
            _ = try await f.library.openLink(id: id, expires: expires, signature: signature)
        }
    }

    /// A link dies with its file, even while another owner's record of the same bytes keeps the blob. (It was
    /// signed over the bytes' key and kept working.)
    @Test func aDeletedFilesLinkIsGoneWhileItsBytesLiveOn() async throws {
        let f = Fixture()
        let (mine, _) = try await f.upload([4, 5, 6], as: alice)
        let (theirs, deduplicated) = try await f.upload([4, 5, 6], as: bob)
        #expect(deduplicated && theirs.key == mine.key)
        let (link, _) = try await f.library.downloadLink(id: mine.id.description, ttlSeconds: 60, caller: alice)
        guard case .gatewayPath(let path) = link else { Issue.record("expected a gateway link"); return }
        let query = path.split(separator: "?")[1].split(separator: "&").map { $0.split(separator: "=").map(String.init) }
        try await f.library.delete(id: mine.id.description, caller: alice)
        await #expect(throws: FileLibrary.LinkRefusal.gone) {
            _ = try await f.library.openLink(id: mine.id.description, expires: query[0][1], signature: query[1][1])
        }
        #expect(try await f.read(theirs.id, as: bob) == [4, 5, 6])
    }
}

/// `count` chunks of `size` bytes, made as they are asked for; counts how many were taken.
private final class CountingChunks: AsyncSequence, AsyncIteratorProtocol, @unchecked Sendable {
    // @unchecked: iterated by one task (the upload's), read by the test after it ended.
    private let count: Int
    private let size: Int
    private(set) var taken = 0

    init(count: Int, size: Int) {
        self.count = count
        self.size = size
    }

    func makeAsyncIterator() -> CountingChunks { self }

    func next() async -> [UInt8]? {
        guard taken < count else { return nil }
        taken += 1
        return [UInt8](repeating: 1, count: size)
    }
}
