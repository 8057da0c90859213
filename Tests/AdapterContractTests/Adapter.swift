import AWSAdapters
import CurlHTTP
import EmbeddedAdapters
import Foundation
import Logging
import MotoSupport
import GatewayApplication
import MemoryAdapters
import Testing

/// A store that keeps both users and sessions, as every adapter under test does.
typealias UserStore = UserRepository & SessionRepository

extension UserRepository {
    // Changes without domain events; recording them is tested on its own (EventStoreContractTests).
    func create(_ user: User) async throws { try await create(user, recording: []) }
    func update(_ user: User, expectedVersion: Int64) async throws { try await update(user, expectedVersion: expectedVersion, recording: []) }
    func delete(id: UserID, expectedVersion: Int64?) async throws -> User { try await delete(id: id, expectedVersion: expectedVersion, recording: []) }
}

/// The adapters every contract test runs against.
enum Adapter: String, CaseIterable, Sendable, CustomTestStringConvertible {
    case memory
    case sqlite
    /// DynamoDB, on moto.
    case dynamodb

    var testDescription: String { rawValue }

    /// Runs `body` with a new, empty store of this adapter and disposes of the store afterwards.
    func withStore(_ body: (any UserStore) async throws -> Void) async throws {
        try await withStores { users, _ in try await body(users) }
    }

    /// Runs `body` with a new, empty user store and the event log its changes record into.
    func withStores(_ body: (any UserStore, any EventStore) async throws -> Void) async throws {
        switch self {
        case .memory:
            let store = MemoryUserStore()
            try await body(store, store.events)
        case .sqlite:
            try await withTemporaryDirectory { directory in
                let store = try await SQLiteUserStore.open(path: "\(directory)/users.sqlite")
                do {
                    try await body(store, store.events)
                } catch {
                    try? await store.close()
                    throw error
                }
                try await store.close()
            }
        case .dynamodb:
            let backend = try await AWSTestBackend.make()
            defer { backend.close() }
            try await body(backend.users, backend.events)
        }
    }

    /// Runs `body` with a new, empty file record store and the event log its changes record into.
    func withFileStores(_ body: (any FileRepository, any EventStore) async throws -> Void) async throws {
        switch self {
        case .memory:
            let store = MemoryFileStore()
            try await body(store, store.events)
        case .sqlite:
            try await withTemporaryDirectory { directory in
                let records = try await SQLiteRecords.open(path: "\(directory)/gateway.sqlite")
                do {
                    try await body(records.files, records.events)
                } catch {
                    try? await records.close()
                    throw error
                }
                try await records.close()
            }
        case .dynamodb:
            let backend = try await AWSTestBackend.make()
            defer { backend.close() }
            try await body(backend.files, backend.events)
        }
    }
}

extension Adapter {
    /// Runs `body` with new, empty outbox cursors and the clock their leases are measured by.
    func withOutbox(_ body: (any OutboxCursors, FakeWallClock) async throws -> Void) async throws {
        let clock = FakeWallClock(UnixTime(seconds: 1_750_000_000))
        switch self {
        case .memory:
            try await body(MemoryOutboxCursors(clock: clock), clock)
        case .sqlite:
            try await withTemporaryDirectory { directory in
                let records = try await SQLiteRecords.open(path: "\(directory)/gateway.sqlite")
                do {
                    try await body(SQLiteOutboxCursors(database: records.database, clock: clock), clock)
                } catch {
                    try? await records.close()
                    throw error
                }
                try await records.close()
            }
        case .dynamodb:
            let backend = try await AWSTestBackend.make(clock: clock)
            defer { backend.close() }
            try await body(backend.outboxCursors, clock)
        }
    }
}

/// The AWS backend on the test process's moto server, in a table (and bucket) of its own, migrated.
enum AWSTestBackend {
    static let http = CurlHTTPClient()
    static let credentials = StaticCredentialProvider(AWSCredentials(accessKeyID: "test", secretAccessKey: "test", source: "test"))

    static func make(bucket: Bool = false, clock: any WallClock = FakeWallClock(UnixTime(seconds: 1_750_000_000))) async throws -> AWSBackend {
        let moto = try await MotoServer.start()
        var settings = AWSBackend.Settings()
        settings.endpointURL = moto.endpoint
        settings.table = MotoServer.uniqueName("contract")
        if bucket { settings.bucket = MotoServer.uniqueName("blobs") }
        settings.spoolDirectory = FileManager.default.temporaryDirectory.path
        let backend = AWSBackend(
            settings: settings, credentials: credentials, http: http, clock: clock,
            logger: Logger(label: "contract-tests")
        )
        _ = try await backend.migrate()
        return backend
    }
}

/// Runs `body` with the path of a new directory, removed afterwards.
func withTemporaryDirectory(_ body: (String) async throws -> Void) async throws {
    let url = FileManager.default.temporaryDirectory.appendingPathComponent("adapter-contract-\(UUID().uuidString)")
    try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
    defer { try? FileManager.default.removeItem(at: url) }
    try await body(url.path)
}

/// Test data: ids in a known order and valid users and sessions built from them.
enum Fixture {
    /// Milliseconds of the first id; the n-th id is n milliseconds later.
    static let epoch: UInt64 = 1_750_000_000_000

    /// The n-th user id: ids sort by n.
    static func userID(_ n: Int, sequence: UInt64 = 0) -> UserID {
        UserID(ULID(milliseconds: epoch + UInt64(n), randomHigh: 0, randomLow: sequence))
    }

    /// The n-th session id: ids sort by n.
    static func sessionID(_ n: Int) -> ULID {
        ULID(milliseconds: epoch + UInt64(n), randomHigh: 0x5E55, randomLow: UInt64(n))
    }

    /// A time with nanoseconds, to see that they round-trip.
    static func time(_ n: Int) -> UnixTime {
        UnixTime(seconds: 1_750_000_000 + Int64(n), nanoseconds: 123_456_789)
    }

    /// A valid user whose email and Firebase uid derive from its id unless given.
    static func user(
        _ id: UserID, email: String? = nil, firebaseUID: String? = nil, isActive: Bool = true, version: Int64 = 1
    ) throws -> User {
        User(
            id: id, email: try Email(email ?? "user.\(id)@example.com"), displayName: try DisplayName("User \(id)"),
            photoURL: try PhotoURL("https://example.com/photos/\(id).png"), firebaseUID: firebaseUID ?? "uid-\(id)",
            isActive: isActive, version: version, createdAt: time(1), updatedAt: time(2)
        )
    }

    static func user(_ n: Int, email: String? = nil, firebaseUID: String? = nil, isActive: Bool = true) throws -> User {
        try user(userID(n), email: email, firebaseUID: firebaseUID, isActive: isActive)
    }

    static func session(_ n: Int, of user: UserID, revoked: Bool = false) throws -> Session {
        Session(
            id: sessionID(n), userID: user, device: try DeviceLabel("Pixel \(n)"), createdAt: time(n),
            expiresAt: time(n).adding(seconds: 3600), revoked: revoked
        )
    }
}
