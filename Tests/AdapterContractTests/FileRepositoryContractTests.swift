import EmbeddedAdapters
import GatewayApplication
import Synchronization
import Testing

/// The `FileRepository` contract, run against every adapter.
@Suite("FileRepository contract")
struct FileRepositoryContractTests {
    @Test(arguments: Adapter.allCases)
    func createdFileReadsBackExactly(_ adapter: Adapter) async throws {
        try await adapter.withFileStores { files, _ in
            let detailed = Fixture.file(
                1, key: Fixture.blobKey(1, fileExtension: "pdf"), size: 5_000_000_123, contentType: "application/pdf",
                filename: "Résumé 履歴書 🗂️.pdf",
                metadata: ["album": "Été 2025", "empty": "", "emoji": "🦆", "long": String(repeating: "x", count: 4000)],
                createdAt: UnixTime(seconds: 1_750_000_000, nanoseconds: 987_654_321)
            )
            let plain = Fixture.file(
                2, key: Fixture.blobKey(2, fileExtension: ""), size: 0, contentType: "application/octet-stream",
                filename: "README", metadata: [:], createdAt: UnixTime(seconds: -1, nanoseconds: 1)
            )
            try await files.create(detailed)
            try await files.create(plain)

            #expect(try await files.file(id: detailed.id) == detailed)
            #expect(try await files.file(id: plain.id) == plain)
            #expect(try await files.file(id: Fixture.fileID(3)) == nil)
        }
    }

    @Test(arguments: Adapter.allCases)
    func aTakenIdIsRefused(_ adapter: Adapter) async throws {
        try await adapter.withFileStores { files, _ in
            let first = Fixture.file(1)
            try await files.create(first)

            let error = await #expect(throws: DomainError.self) {
                try await files.create(Fixture.file(1, owner: "uid-bob", key: Fixture.blobKey(9), filename: "other.bin"))
            }
            #expect(error?.code == .alreadyExists)
            #expect(try await files.file(id: first.id) == first)
            #expect(try await files.references(to: Fixture.blobKey(9)) == 0)
        }
    }

    @Test(arguments: Adapter.allCases)
    func listPagesAnOwnersFilesInIdOrder(_ adapter: Adapter) async throws {
        try await adapter.withFileStores { files, _ in
            // Created out of order, two owners interleaved.
            let all = [7, 3, 11, 0, 5, 9, 1, 10, 4, 8, 2, 6].map { Fixture.file($0, owner: $0 % 3 == 0 ? "uid-bob" : "uid-ada") }
            for file in all { try await files.create(file) }

            for owner in ["uid-ada", "uid-bob"] {
                let expected = all.filter { $0.ownerID == owner }.sorted { $0.id < $1.id }
                var pages: [[FileRecord]] = []
                var cursor: ULID?
                repeat {
                    let page = try await files.list(owner: owner, after: cursor, limit: 3)
                    pages.append(page)
                    cursor = page.last?.id
                } while pages.last?.count == 3

                #expect(pages.dropLast().allSatisfy { $0.count == 3 })
                #expect(pages.flatMap { $0 } == expected)
                #expect(try await files.list(owner: owner, after: nil, limit: 0).isEmpty)
                #expect(try await files.list(owner: owner, after: nil, limit: -1).isEmpty)
                #expect(try await files.list(owner: owner, after: expected.last?.id, limit: 5).isEmpty)
                // The cursor need not be a stored id.
                let between = ULID(milliseconds: Fixture.epoch + 4, randomHigh: 0xFFFF, randomLow: 0)
                #expect(try await files.list(owner: owner, after: between, limit: 100) == expected.filter { $0.id > between })
            }
            #expect(try await files.list(owner: "uid-nobody", after: nil, limit: 100).isEmpty)
            #expect(try await files.list(owner: "UID-ADA", after: nil, limit: 100).isEmpty, "owners are compared exactly")
        }
    }

    @Test(arguments: Adapter.allCases)
    func deleteReturnsTheRecordAndTheReferencesLeft(_ adapter: Adapter) async throws {
        try await adapter.withFileStores { files, _ in
            let shared = Fixture.blobKey(1)
            let ada = Fixture.file(1, owner: "uid-ada", key: shared, filename: "a.bin")
            let bob = Fixture.file(2, owner: "uid-bob", key: shared, filename: "b.bin")
            let other = Fixture.file(3, owner: "uid-ada", key: Fixture.blobKey(2))
            for file in [ada, bob, other] { try await files.create(file) }
            #expect(try await files.references(to: shared) == 2)

            let first = try await files.delete(id: ada.id)
            #expect(first.file == ada)
            #expect(first.remainingReferences == 1)
            #expect(try await files.file(id: ada.id) == nil)
            #expect(try await files.list(owner: "uid-ada", after: nil, limit: 10) == [other])
            #expect(try await files.references(to: shared) == 1)

            let second = try await files.delete(id: bob.id)
            #expect(second.file == bob)
            #expect(second.remainingReferences == 0)
            #expect(try await files.references(to: shared) == 0)
            #expect(try await files.references(to: Fixture.blobKey(2)) == 1)
        }
    }

    @Test(arguments: Adapter.allCases)
    func deleteOfAMissingFileIsNotFound(_ adapter: Adapter) async throws {
        try await adapter.withFileStores { files, _ in
            let never = await #expect(throws: DomainError.self) { _ = try await files.delete(id: Fixture.fileID(1)) }
            #expect(never?.code == .notFound)

            try await files.create(Fixture.file(2))
            _ = try await files.delete(id: Fixture.fileID(2))
            let again = await #expect(throws: DomainError.self) { _ = try await files.delete(id: Fixture.fileID(2)) }
            #expect(again?.code == .notFound)
        }
    }

    @Test(arguments: Adapter.allCases)
    func referencesCountRecordsWithTheSameKey(_ adapter: Adapter) async throws {
        try await adapter.withFileStores { files, _ in
            let key = Fixture.blobKey(1, fileExtension: "png")
            #expect(try await files.references(to: key) == 0)
            for n in 1...3 { try await files.create(Fixture.file(n, owner: "uid-\(n)", key: key)) }
            try await files.create(Fixture.file(4, key: Fixture.blobKey(1, fileExtension: "jpg")))
            try await files.create(Fixture.file(5, key: Fixture.blobKey(1, fileExtension: "")))
            #expect(try await files.references(to: key) == 3)
            #expect(try await files.references(to: Fixture.blobKey(1, fileExtension: "jpg")) == 1, "the extension is part of the key")
            #expect(try await files.references(to: Fixture.blobKey(1, fileExtension: "")) == 1)
            #expect(try await files.references(to: Fixture.blobKey(2, fileExtension: "png")) == 0)
        }
    }

    @Test(arguments: Adapter.allCases)
    func concurrentDeletesOfOneBlobsRecordsSeeTheLastReferenceGoOnce(_ adapter: Adapter) async throws {
        try await adapter.withFileStores { files, _ in
            let key = Fixture.blobKey(1)
            for n in 0..<10 { try await files.create(Fixture.file(n, owner: "uid-\(n)", key: key)) }

            let remaining = try await withThrowingTaskGroup(of: Int.self) { group in
                for n in 0..<10 { group.addTask { try await files.delete(id: Fixture.fileID(n)).remainingReferences } }
                return try await group.reduce(into: []) { $0.append($1) }
            }
            #expect(remaining.sorted() == Array(0..<10), "each delete saw the ones committed before it, so one saw 0")
            #expect(try await files.references(to: key) == 0)
        }
    }

    @Test(arguments: Adapter.allCases)
    func fileChangesAppendTheirEventsOnlyWhenTheyCommit(_ adapter: Adapter) async throws {
        try await adapter.withFileStores { files, events in
            let file = Fixture.file(1)
            try await files.create(
                file,
                recording: [
                    EventStoreContractTests.pending(1, type: "FileCreated"),
                    EventStoreContractTests.pending(2, type: "FileIndexed"),
                ]
            )
            // Refused changes record nothing.
            await #expect(throws: DomainError.self) {
                try await files.create(file, recording: [EventStoreContractTests.pending(3, type: "FileCreated")])
            }
            await #expect(throws: DomainError.self) {
                _ = try await files.delete(id: Fixture.fileID(2), recording: [EventStoreContractTests.pending(4, type: "FileDeleted")])
            }
            _ = try await files.delete(id: file.id, recording: [EventStoreContractTests.pending(5, type: "FileDeleted")])

            let log = try await events.read(after: 0, limit: 10, filter: EventFilter())
            #expect(log.events.map(\.event.type) == ["FileCreated", "FileIndexed", "FileDeleted"])
            #expect(log.events.map(\.sequence) == [1, 2, 3])
            #expect(try await events.lastSequence() == 3)
        }
    }

    @Test(arguments: Adapter.allCases)
    func committedChangesWakeSubscribers(_ adapter: Adapter) async throws {
        try await adapter.withFileStores { files, events in
            async let woke = events.appends.wait(beyond: 0, timeout: .seconds(10))
            try await Task.sleep(for: .milliseconds(20))
            try await files.create(Fixture.file(1), recording: [EventStoreContractTests.pending(1, type: "FileCreated")])
            #expect(await woke)
        }
    }

    @Test(arguments: Adapter.allCases)
    func pinsCountAsReferencesAndHoldOffDeletion(_ adapter: Adapter) async throws {
        try await adapter.withFileStores { files, _ in
            let key = Fixture.blobKey(1)
            let deletions = Mutex(0)
            try await files.pin(key)
            try await files.pin(key)
            #expect(try await files.references(to: key) == 2)
            #expect(try await files.deleteBlob(key) { deletions.withLock { $0 += 1 } } == false, "held")
            #expect(try await files.unpin(key) == 1)
            try await files.create(Fixture.file(1, key: key))
            #expect(try await files.unpin(key) == 1, "the record still references it")
            #expect(try await files.deleteBlob(key) { deletions.withLock { $0 += 1 } } == false, "referenced")
            let removed = try await files.delete(id: Fixture.fileID(1))
            #expect(removed.remainingReferences == 0)
            #expect(try await files.deleteBlob(key) { deletions.withLock { $0 += 1 } })
            #expect(deletions.withLock { $0 } == 1)
            // The same bytes come back afterwards.
            try await files.pin(key)
            #expect(try await files.references(to: key) == 1)
        }
    }

    @Test(arguments: Adapter.allCases)
    func aPinWaitsForADeletionUnderWay(_ adapter: Adapter) async throws {
        try await adapter.withFileStores { files, _ in
            let key = Fixture.blobKey(1)
            let steps = Steps()
            let (started, startedSignal) = AsyncStream.makeStream(of: Void.self)
            let (release, releaseSignal) = AsyncStream.makeStream(of: Void.self)
            let deletion = Task {
                try await files.deleteBlob(key) {
                    startedSignal.yield()
                    for await _ in release { break }
                    steps.append("deleted")
                }
            }
            for await _ in started { break }
            let pin = Task {
                try await files.pin(key)
                steps.append("pinned")
            }
            try await Task.sleep(for: .milliseconds(100))
            #expect(steps.list.isEmpty, "the pin waits while the deletion runs")
            releaseSignal.yield()
            #expect(try await deletion.value)
            try await pin.value
            #expect(steps.list == ["deleted", "pinned"])
            #expect(try await files.references(to: key) == 1)
        }
    }
}

/// What happened, in order, across tasks.
final class Steps: Sendable {
    private let steps = Mutex<[String]>([])
    var list: [String] { steps.withLock { $0 } }
    func append(_ step: String) { steps.withLock { $0.append(step) } }
}

/// What only the SQLite adapter does with file records: refuse a stored record it cannot trust.
@Suite("SQLiteFileStore")
struct SQLiteFileStoreTests {
    @Test func aStoredKeyThatDoesNotParseIsAnInvalidRecord() async throws {
        try await withTemporaryDirectory { directory in
            let records = try await SQLiteRecords.open(path: "\(directory)/gateway.sqlite")
            let file = Fixture.file(1)
            try await records.files.create(file)
            try await records.database.write { db in
                try db.run("UPDATE files SET blob_key = '../../etc/passwd' WHERE id = ?", [.blob(file.id.bytes)])
            }

            for read in [
                { _ = try await records.files.file(id: file.id) },
                { _ = try await records.files.list(owner: file.ownerID, after: nil, limit: 10) },
                { _ = try await records.files.delete(id: file.id) },
            ] as [@Sendable () async throws -> Void] {
                let error = await #expect(throws: StorageError.self) { try await read() }
                #expect(error?.code == .invalidRecord)
            }
            let count = try await records.database.read { db in
                try db.first("SELECT count(*) FROM files") { try $0.int64(0) }
            }
            #expect(count == 1, "the refused delete was rolled back")
            try await records.close()
        }
    }
}

extension FileRepository {
    // Changes without domain events; recording them is tested on its own.
    func create(_ file: FileRecord) async throws { try await create(file, recording: []) }
    func delete(id: ULID) async throws -> (file: FileRecord, remainingReferences: Int) {
        try await delete(id: id, recording: [])
    }
}

extension Fixture {
    /// The n-th file id: ids sort by n.
    static func fileID(_ n: Int) -> ULID {
        ULID(milliseconds: epoch + UInt64(n), randomHigh: 0xF11E, randomLow: UInt64(n))
    }

    /// The key of the n-th distinct content.
    static func blobKey(_ n: Int, fileExtension: String = "bin") -> BlobKey {
        BlobKey(hash: ContentHash(digest: (0..<32).map { UInt8(truncatingIfNeeded: n &* 31 &+ $0) }), fileExtension: fileExtension)
    }

    static func file(
        _ n: Int, owner: String = "uid-ada", key: BlobKey? = nil, size: Int64 = 1234, contentType: String = "image/png",
        filename: String? = nil, metadata: [String: String] = ["n": "x"], createdAt: UnixTime? = nil
    ) -> FileRecord {
        FileRecord(
            id: fileID(n), key: key ?? blobKey(n), size: size, contentType: contentType, filename: filename ?? "file \(n).png",
            ownerID: owner, metadata: metadata, createdAt: createdAt ?? time(n)
        )
    }
}
