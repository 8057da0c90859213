import FirebaseAuth
import Foundation
import GatewayApplication
import GatewayProtos
import GatewayServer
import Logging
import MemoryAdapters
import RPCCore
import StandardProtos
import Testing

/// A sealer that needs no OpenSSL key file: HMAC with a fixed test key.
private let sealer = HMACTokenSealer(key: Array(repeating: 7, count: 32))

/// A repository whose storage has failed, to see what callers are told.
private struct BrokenStorage: UserRepository, SessionRepository {
    struct DiskOnFire: Error, CustomStringConvertible { var description: String { "disk I/O error at /secret/path" } }
    func create(_ user: User, recording events: [PendingEvent]) async throws { throw DiskOnFire() }
    func user(id: UserID) async throws -> User? { throw DiskOnFire() }
    func user(email: Email) async throws -> User? { throw DiskOnFire() }
    func user(firebaseUID: String) async throws -> User? { throw DiskOnFire() }
    func update(_ user: User, expectedVersion: Int64, recording events: [PendingEvent]) async throws { throw DiskOnFire() }
    func delete(id: UserID, expectedVersion: Int64?, recording events: [PendingEvent]) async throws -> User { throw DiskOnFire() }
    func list(after: UserID?, limit: Int, activeOnly: Bool) async throws -> [User] { throw DiskOnFire() }
    func count(activeOnly: Bool) async throws -> Int64 { throw DiskOnFire() }
    func create(_ session: Session) async throws { throw DiskOnFire() }
    func session(id: ULID) async throws -> Session? { throw DiskOnFire() }
    func list(userID: UserID, after: ULID?, limit: Int, includeRevoked: Bool) async throws -> [Session] { throw DiskOnFire() }
    func revoke(id: ULID) async throws -> Session { throw DiskOnFire() }
}

private func usersClient(storage: (any UserRepository & SessionRepository)? = nil) throws -> Gateway_User_V1_UserService.Client {
    let store = storage ?? MemoryUserStore()
    let accounts = UserAccounts(
        users: store, sessions: store, clock: clock, ids: MonotonicIDGenerator(clock: clock), pageTokens: sealer,
        domainEvents: ProtobufDomainEvents()
    )
    let keys = try authority.signingKeys()
    let verifier = FirebaseTokenVerifier(
        configuration: .init(projectID: LocalAuthority.projectID), idTokenKeys: keys, sessionCookieKeys: keys, clock: clock
    )
    let logger = Logger(label: "test")
    return Gateway_User_V1_UserService.Client(RPCClient(transport: InProcessTransport(
        services: [UserServiceImplementation(accounts: accounts)],
        interceptors: [
            ScopedServerInterceptor(AuthInterceptor(verifier: verifier)),
            ScopedServerInterceptor(DomainStatusInterceptor(logger: logger)),
        ]
    )))
}

private func bearer(_ uid: String, admin: Bool = false) -> Metadata {
    ["authorization": .string("Bearer \(token(uid: uid, admin: admin))")]
}

@Suite struct UserServiceTests {
    @Test func domainErrorsBecomeTheirStatusCodes() async throws {
        let users = try usersClient()
        var create = Gateway_User_V1_CreateUserRequest()
        create.email = "ada@example.com"
        create.displayName = "Ada"
        let ada = try await users.createUser(create, metadata: bearer("ada"))

        #expect(await failure { _ = try await users.createUser(create, metadata: bearer("bob")) }?.code == .alreadyExists)

        var update = Gateway_User_V1_UpdateUserRequest()
        update.user = ada
        update.user?.displayName = "Ada L."
        update.updateMask = Google_Protobuf_FieldMask()
        update.updateMask?.paths = ["display_name"]
        update.expectedVersion = 1
        #expect(try await users.updateUser(update, metadata: bearer("ada")).version == 2)
        let stale = await failure { _ = try await users.updateUser(update, metadata: bearer("ada")) }
        #expect(stale?.code == .aborted)
        #expect(stale?.message == "version conflict: expected version 1, stored version is 2")

        var get = Gateway_User_V1_GetUserRequest()
        get.id = "not-a-ulid"
        let invalid = await failure { _ = try await users.getUser(get, metadata: bearer("ada")) }
        #expect(invalid?.code == .invalidArgument)
        #expect(invalid?.message.hasPrefix("id: ") == true)

        get.id = ada.id
        #expect(await failure { _ = try await users.getUser(get, metadata: bearer("bob")) }?.code == .permissionDenied)
        get.id = ULID(high: 1, low: 2).description
        #expect(await failure { _ = try await users.getUser(get, metadata: bearer("ada")) }?.code == .notFound)
        #expect(await failure { _ = try await users.createSession(.init(), metadata: bearer("carol")) }?.code == .invalidArgument)
    }

    @Test func storageFailuresAreInternalWithoutDetails() async throws {
        let users = try usersClient(storage: BrokenStorage())
        let error = await failure { _ = try await users.getCurrentUser(.init(), metadata: bearer("ada")) }
        #expect(error?.code == .internal)
        #expect(error?.message == "internal error")
    }

    @Test func everyMethodNeedsAToken() async throws {
        let users = try usersClient()
        #expect(await failure { _ = try await users.getCurrentUser(.init()) }?.code == .unauthenticated)
        #expect(await failure { _ = try await users.countUsers(.init(), metadata: bearer("ada")) }?.code == .permissionDenied)
        #expect(try await users.countUsers(.init(), metadata: bearer("root", admin: true)).count == 0)
    }
}
