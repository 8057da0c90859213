import GatewayApplication
import Testing

/// The `SessionRepository` contract, run against every adapter.
@Suite("SessionRepository contract")
struct SessionRepositoryContractTests {
    @Test(arguments: Adapter.allCases)
    func createdSessionIsFound(_ adapter: Adapter) async throws {
        try await adapter.withStore { store in
            let user = try Fixture.user(1)
            try await store.create(user)
            let session = try Fixture.session(1, of: user.id)
            try await store.create(session)

            #expect(try await store.session(id: session.id) == session)
            #expect(try await store.session(id: Fixture.sessionID(2)) == nil)

            let duplicate = await #expect(throws: DomainError.self) { try await store.create(session) }
            #expect(duplicate?.code == .alreadyExists)
        }
    }

    @Test(arguments: Adapter.allCases)
    func sessionOfAMissingUserIsNotFound(_ adapter: Adapter) async throws {
        try await adapter.withStore { store in
            let error = await #expect(throws: DomainError.self) {
                try await store.create(Fixture.session(1, of: Fixture.userID(1)))
            }
            #expect(error?.code == .notFound)
            #expect(error?.message == "user \(Fixture.userID(1)) not found")
            let stored = try await store.session(id: Fixture.sessionID(1))
            #expect(stored == nil)
        }
    }

    @Test(arguments: Adapter.allCases, [false, true])
    func listPagesAUsersSessionsInIdOrder(_ adapter: Adapter, includeRevoked: Bool) async throws {
        try await adapter.withStore { store in
            let ada = try Fixture.user(1)
            let bob = try Fixture.user(2)
            try await store.create(ada)
            try await store.create(bob)
            // Created out of order, every third revoked, interleaved with another user's.
            var adas: [Session] = []
            for n in [5, 1, 8, 3, 0, 7, 2, 6, 4] {
                let session = try Fixture.session(n, of: ada.id, revoked: n % 3 == 0)
                try await store.create(session)
                adas.append(session)
                try await store.create(Fixture.session(100 + n, of: bob.id))
            }
            let expected = adas.filter { includeRevoked || !$0.revoked }.sorted { $0.id < $1.id }

            var listed: [Session] = []
            var cursor: ULID?
            while true {
                let page = try await store.list(userID: ada.id, after: cursor, limit: 2, includeRevoked: includeRevoked)
                #expect(page.count <= 2)
                guard let last = page.last else { break }
                listed += page
                cursor = last.id
            }
            #expect(listed == expected)
            #expect(try await store.list(userID: ada.id, after: nil, limit: 0, includeRevoked: includeRevoked).isEmpty)
            #expect(try await store.list(userID: Fixture.userID(3), after: nil, limit: 10, includeRevoked: true).isEmpty)
        }
    }

    @Test(arguments: Adapter.allCases)
    func revokeIsIdempotent(_ adapter: Adapter) async throws {
        try await adapter.withStore { store in
            let user = try Fixture.user(1)
            try await store.create(user)
            let session = try Fixture.session(1, of: user.id)
            try await store.create(session)

            var revoked = session
            revoked.revoked = true
            #expect(try await store.revoke(id: session.id) == revoked)
            #expect(try await store.revoke(id: session.id) == revoked)
            #expect(try await store.session(id: session.id) == revoked)
            #expect(try await store.list(userID: user.id, after: nil, limit: 10, includeRevoked: false).isEmpty)
            #expect(try await store.list(userID: user.id, after: nil, limit: 10, includeRevoked: true) == [revoked])
        }
    }

    @Test(arguments: Adapter.allCases)
    func revokeOfAMissingSessionIsNotFound(_ adapter: Adapter) async throws {
        try await adapter.withStore { store in
            let error = await #expect(throws: DomainError.self) { try await store.revoke(id: Fixture.sessionID(1)) }
            #expect(error?.code == .notFound)
        }
    }
}
