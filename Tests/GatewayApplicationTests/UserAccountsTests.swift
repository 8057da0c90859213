import GatewayApplication
import MemoryAdapters
import Testing

private struct Fixture {
    let store = MemoryUserStore()
    let clock = FakeWallClock(UnixTime(seconds: 1_800_000_000))
    let accounts: UserAccounts

    init() {
        accounts = UserAccounts(
            users: store, sessions: store, clock: clock,
            ids: MonotonicIDGenerator(clock: clock, random: SeededRandomNumberGenerator(seed: 42)), pageTokens: PlainSealer(),
            domainEvents: TextDomainEvents()
        )
    }

    static func caller(_ uid: String, admin: Bool = false) -> Principal {
        Principal(uid: uid, isAdmin: admin, expiresAt: 1_900_000_000)
    }
}

private func expectDomainError(_ code: DomainError.Code, field: String? = nil, _ body: () async throws -> Void) async {
    do {
        try await body()
        Issue.record("expected \(code)")
    } catch let error as DomainError {
        #expect(error.code == code, "\(error)")
        if let field { #expect(error.field == field) }
    } catch {
        Issue.record("unexpected \(error)")
    }
}

@Suite struct UserAccountsTests {
    let ada = Fixture.caller("uid-ada")
    let bob = Fixture.caller("uid-bob")
    let admin = Fixture.caller("uid-admin", admin: true)

    @Test func lifecycleOfTheCallersOwnUser() async throws {
        let f = Fixture()
        let created = try await f.accounts.createUser(.init(email: "Ada@Example.com", displayName: "Ada"), caller: ada)
        #expect(created.firebaseUID == "uid-ada")
        #expect(created.version == 1)
        #expect(try await f.accounts.currentUser(caller: ada) == created)
        #expect(try await f.accounts.user(email: "ada@example.COM", caller: ada) == created)

        f.clock.advance(seconds: 5)
        let updated = try await f.accounts.updateUser(
            id: created.id.description, changes: .init(displayName: "Ada L.", isActive: true), expectedVersion: 1, caller: ada
        )
        #expect(updated.version == 2)
        #expect(updated.displayName.value == "Ada L.")
        #expect(updated.isActive)
        #expect(updated.email == created.email)
        #expect(updated.updatedAt == created.createdAt.adding(seconds: 5))

        try await f.accounts.deleteUser(id: created.id.description, expectedVersion: 2, caller: ada)
        await expectDomainError(.notFound) { _ = try await f.accounts.user(id: created.id.description, caller: ada) }
    }

    @Test func changesRecordTheirDomainEventsForTheUsersOwner() async throws {
        let f = Fixture()
        let user = try await f.accounts.createUser(.init(email: "a@b.co", displayName: "A", firebaseUID: "uid-ada"), caller: admin)
        _ = try await f.accounts.updateUser(id: user.id.description, changes: .init(displayName: "B", isActive: true), expectedVersion: nil, caller: ada)
        try await f.accounts.deleteUser(id: user.id.description, expectedVersion: nil, caller: admin)
        let log = try await f.store.events.read(after: 0, limit: 10, filter: EventFilter()).events
        #expect(log.map(\.event.type) == ["UserCreated", "UserUpdated", "UserDeleted"])
        #expect(log.map { String(decoding: $0.event.payload, as: UTF8.self) } == ["a@b.co", "v2 display_name", user.id.description])
        #expect(log.allSatisfy { $0.publisher == "uid-ada" && $0.event.aggregateID == user.id.description })
        // A refused change records nothing.
        _ = try await f.accounts.createUser(.init(email: "x@b.co", displayName: "X"), caller: bob)
        await expectDomainError(.alreadyExists) { _ = try await f.accounts.createUser(.init(email: "X@b.co", displayName: "X"), caller: ada) }
        #expect(try await f.store.events.lastSequence() == 4)
    }

    @Test func staleVersionNamesBothVersions() async throws {
        let f = Fixture()
        let user = try await f.accounts.createUser(.init(email: "a@b.co", displayName: "A"), caller: ada)
        _ = try await f.accounts.updateUser(id: user.id.description, changes: .init(displayName: "B"), expectedVersion: 1, caller: ada)
        do {
            _ = try await f.accounts.updateUser(id: user.id.description, changes: .init(displayName: "C"), expectedVersion: 1, caller: ada)
            Issue.record("a stale version was accepted")
        } catch let error as DomainError {
            #expect(error.code == .versionConflict)
            #expect(error.message.contains("expected version 1") && error.message.contains("stored version is 2"))
        }
    }

    @Test func othersUsersAreOffLimitsExceptToAdmins() async throws {
        let f = Fixture()
        let user = try await f.accounts.createUser(.init(email: "a@b.co", displayName: "A"), caller: ada)
        let id = user.id.description
        await expectDomainError(.permissionDenied) { _ = try await f.accounts.user(id: id, caller: bob) }
        // By address: as if there were none, so that the answer does not tell whether the address has an account.
        await expectDomainError(.notFound) { _ = try await f.accounts.user(email: "a@b.co", caller: bob) }
        await expectDomainError(.notFound) { _ = try await f.accounts.user(email: "nobody@b.co", caller: bob) }
        await expectDomainError(.permissionDenied) {
            _ = try await f.accounts.updateUser(id: id, changes: .init(displayName: "X"), expectedVersion: nil, caller: bob)
        }
        await expectDomainError(.permissionDenied) { try await f.accounts.deleteUser(id: id, expectedVersion: nil, caller: bob) }
        await expectDomainError(.permissionDenied) { _ = try await f.accounts.listUsers(pageSize: 0, pageToken: "", activeOnly: false, caller: ada) }
        await expectDomainError(.permissionDenied) { _ = try await f.accounts.countUsers(activeOnly: false, caller: ada) }
        await expectDomainError(.permissionDenied) {
            _ = try await f.accounts.createUser(.init(email: "c@d.co", displayName: "C", firebaseUID: "uid-other"), caller: bob)
        }
        #expect(try await f.accounts.user(id: id, caller: admin) == user)
        let provisioned = try await f.accounts.createUser(.init(email: "c@d.co", displayName: "C", firebaseUID: "uid-carol"), caller: admin)
        #expect(provisioned.firebaseUID == "uid-carol")
        #expect(try await f.accounts.countUsers(activeOnly: false, caller: admin) == 2)
    }

    /// Users could deactivate and reactivate themselves, and nothing refused an inactive one.
    @Test func onlyAdminsChangeIsActiveAndAnInactiveUserIsRefused() async throws {
        let f = Fixture()
        let user = try await f.accounts.createUser(.init(email: "a@b.co", displayName: "A"), caller: ada)
        let id = user.id.description
        _ = try await f.accounts.createSession(device: "phone", ttlSeconds: 0, caller: ada)
        await expectDomainError(.permissionDenied) {
            _ = try await f.accounts.updateUser(id: id, changes: .init(isActive: false), expectedVersion: nil, caller: ada)
        }
        #expect(try await f.accounts.updateUser(id: id, changes: .init(isActive: false), expectedVersion: nil, caller: admin).isActive == false)
        await expectDomainError(.permissionDenied) { _ = try await f.accounts.currentUser(caller: ada) }
        await expectDomainError(.permissionDenied) { _ = try await f.accounts.user(id: id, caller: ada) }
        await expectDomainError(.permissionDenied) {
            _ = try await f.accounts.updateUser(id: id, changes: .init(isActive: true), expectedVersion: nil, caller: ada)
        }
        await expectDomainError(.permissionDenied) { _ = try await f.accounts.createSession(device: "laptop", ttlSeconds: 0, caller: ada) }
        await expectDomainError(.permissionDenied) {
            _ = try await f.accounts.listSessions(pageSize: 0, pageToken: "", includeRevoked: false, caller: ada)
        }
        #expect(try await f.accounts.user(id: id, caller: admin).isActive == false)
        _ = try await f.accounts.updateUser(id: id, changes: .init(isActive: true), expectedVersion: nil, caller: admin)
        #expect(try await f.accounts.currentUser(caller: ada).isActive)
    }

    @Test func uniqueEmailAndOneUserPerAccount() async throws {
        let f = Fixture()
        _ = try await f.accounts.createUser(.init(email: "a@b.co", displayName: "A"), caller: ada)
        await expectDomainError(.alreadyExists) { _ = try await f.accounts.createUser(.init(email: "A@B.CO", displayName: "B"), caller: bob) }
        await expectDomainError(.alreadyExists) { _ = try await f.accounts.createUser(.init(email: "new@b.co", displayName: "A"), caller: ada) }
    }

    @Test func validationNamesTheField() async throws {
        let f = Fixture()
        await expectDomainError(.invalidArgument, field: "email") { _ = try await f.accounts.createUser(.init(email: "nope", displayName: "A"), caller: ada) }
        await expectDomainError(.invalidArgument, field: "display_name") { _ = try await f.accounts.createUser(.init(email: "a@b.co", displayName: ""), caller: ada) }
        await expectDomainError(.invalidArgument, field: "id") { _ = try await f.accounts.user(id: "not-a-ulid", caller: ada) }
        await expectDomainError(.invalidArgument, field: "user.email") {
            _ = try await f.accounts.updateUser(id: "01ARZ3NDEKTSV4RRFFQ69G5FAV", changes: .init(email: "x"), expectedVersion: nil, caller: ada)
        }
        await expectDomainError(.invalidArgument, field: "page_size") { _ = try await f.accounts.listUsers(pageSize: 1001, pageToken: "", activeOnly: false, caller: admin) }
    }

    @Test func pagingVisitsEveryUserOnceAndTokensAreBoundToTheirFilter() async throws {
        let f = Fixture()
        for i in 0..<25 {
            let user = try await f.accounts.createUser(.init(email: "u\(i)@b.co", displayName: "U\(i)", firebaseUID: "uid-\(i)"), caller: admin)
            if i % 5 == 0 {
                _ = try await f.accounts.updateUser(id: user.id.description, changes: .init(isActive: false), expectedVersion: nil, caller: admin)
            }
        }
        var seen: [String] = []
        var token = ""
        repeat {
            let page = try await f.accounts.listUsers(pageSize: 7, pageToken: token, activeOnly: true, caller: admin)
            #expect(page.items.count <= 7)
            seen += page.items.map(\.email.value)
            token = page.nextPageToken ?? ""
        } while !token.isEmpty
        #expect(seen.count == 20)
        #expect(Set(seen).count == 20)

        let first = try await f.accounts.listUsers(pageSize: 3, pageToken: "", activeOnly: true, caller: admin)
        let next = try #require(first.nextPageToken)
        await expectDomainError(.invalidArgument, field: "page_token") {
            _ = try await f.accounts.listUsers(pageSize: 3, pageToken: next, activeOnly: false, caller: admin)
        }
        await expectDomainError(.invalidArgument, field: "page_token") {
            _ = try await f.accounts.listUsers(pageSize: 3, pageToken: "garbage", activeOnly: true, caller: admin)
        }
    }

    @Test func sessionsBelongToTheCallersUser() async throws {
        let f = Fixture()
        await expectDomainError(.failedPrecondition) { _ = try await f.accounts.createSession(device: "Pixel", ttlSeconds: 0, caller: ada) }
        _ = try await f.accounts.createUser(.init(email: "a@b.co", displayName: "A"), caller: ada)
        _ = try await f.accounts.createUser(.init(email: "b@b.co", displayName: "B"), caller: bob)
        let session = try await f.accounts.createSession(device: "Pixel", ttlSeconds: 0, caller: ada)
        #expect(session.expiresAt == f.clock.now().adding(seconds: UserAccounts.Settings.defaults.defaultSessionLifetimeSeconds))
        await expectDomainError(.invalidArgument, field: "ttl") { _ = try await f.accounts.createSession(device: "P", ttlSeconds: 91 * 86_400, caller: ada) }
        await expectDomainError(.permissionDenied) { _ = try await f.accounts.revokeSession(id: session.id.description, caller: bob) }
        #expect(try await f.accounts.listSessions(pageSize: 0, pageToken: "", includeRevoked: false, caller: bob).items.isEmpty)
        #expect(try await f.accounts.revokeSession(id: session.id.description, caller: ada).revoked)
        #expect(try await f.accounts.listSessions(pageSize: 0, pageToken: "", includeRevoked: false, caller: ada).items.isEmpty)
        #expect(try await f.accounts.listSessions(pageSize: 0, pageToken: "", includeRevoked: true, caller: ada).items.count == 1)
    }

    @Test func aSessionsPageTokenIsNotAnotherUsersToken() async throws {
        let f = Fixture()
        _ = try await f.accounts.createUser(.init(email: "a@b.co", displayName: "A"), caller: ada)
        _ = try await f.accounts.createUser(.init(email: "b@b.co", displayName: "B"), caller: bob)
        for _ in 0..<3 { _ = try await f.accounts.createSession(device: "d", ttlSeconds: 60, caller: ada) }
        let page = try await f.accounts.listSessions(pageSize: 2, pageToken: "", includeRevoked: false, caller: ada)
        let token = try #require(page.nextPageToken)
        #expect(try await f.accounts.listSessions(pageSize: 2, pageToken: token, includeRevoked: false, caller: ada).items.count == 1)
        await expectDomainError(.invalidArgument, field: "page_token") {
            _ = try await f.accounts.listSessions(pageSize: 2, pageToken: token, includeRevoked: false, caller: bob)
        }
    }
}
