import GatewayApplication
import Testing

/// The `UserRepository` contract, run against every adapter.
@Suite("UserRepository contract")
struct UserRepositoryContractTests {
    @Test(arguments: Adapter.allCases)
    func createdUserIsFoundByIdEmailAndFirebaseUID(_ adapter: Adapter) async throws {
        try await adapter.withStore { store in
            let user = try Fixture.user(1, email: "Ada.Lovelace@Example.com", firebaseUID: "firebase-ada")
            try await store.create(user)

            #expect(try await store.user(id: user.id) == user)
            #expect(try await store.user(email: Email("ada.lovelace@example.COM")) == user)
            #expect(try await store.user(firebaseUID: "firebase-ada") == user)

            #expect(try await store.user(id: Fixture.userID(2)) == nil)
            #expect(try await store.user(email: Email("someone@example.com")) == nil)
            #expect(try await store.user(firebaseUID: "FIREBASE-ADA") == nil)
        }
    }

    @Test(arguments: Adapter.allCases)
    func takenEmailFirebaseUIDOrIdIsRefused(_ adapter: Adapter) async throws {
        try await adapter.withStore { store in
            try await store.create(Fixture.user(1, email: "ada@example.com", firebaseUID: "firebase-ada"))

            let email = await #expect(throws: DomainError.self) {
                try await store.create(Fixture.user(2, email: "ADA@example.com"))
            }
            #expect(email?.code == .alreadyExists)
            #expect(email?.message == "a user with email ADA@example.com already exists")

            let uid = await #expect(throws: DomainError.self) {
                try await store.create(Fixture.user(3, firebaseUID: "firebase-ada"))
            }
            #expect(uid?.code == .alreadyExists)
            #expect(uid?.message == "Firebase user firebase-ada already has a user")

            let id = await #expect(throws: DomainError.self) { try await store.create(Fixture.user(1)) }
            #expect(id?.code == .alreadyExists)

            #expect(try await store.count(activeOnly: false) == 1)
        }
    }

    @Test(arguments: Adapter.allCases)
    func updateWithTheStoredVersionReplacesTheUser(_ adapter: Adapter) async throws {
        try await adapter.withStore { store in
            let user = try Fixture.user(1, email: "ada@example.com")
            try await store.create(user)

            var changed = user
            changed.email = try Email("Ada@Example.org")
            changed.displayName = try DisplayName("Countess of Lovelace")
            changed.photoURL = .none
            changed.isActive = false
            changed.version = 2
            changed.updatedAt = Fixture.time(99)
            try await store.update(changed, expectedVersion: 1)

            #expect(try await store.user(id: user.id) == changed)
            #expect(try await store.user(email: Email("ada@example.org")) == changed)
            #expect(try await store.user(email: Email("ada@example.com")) == nil)

            // The old email is free again, and a user may change the case of its own.
            try await store.create(Fixture.user(2, email: "ADA@example.com"))
            changed.email = try Email("ADA@EXAMPLE.ORG")
            changed.version = 3
            try await store.update(changed, expectedVersion: 2)
            #expect(try await store.user(id: user.id)?.email.value == "ADA@EXAMPLE.ORG")
        }
    }

    @Test(arguments: Adapter.allCases)
    func updateWithAStaleVersionConflicts(_ adapter: Adapter) async throws {
        try await adapter.withStore { store in
            var user = try Fixture.user(1)
            try await store.create(user)
            user.version = 2
            try await store.update(user, expectedVersion: 1)

            var stale = user
            stale.displayName = try DisplayName("Stale")
            stale.version = 2
            let error = await #expect(throws: DomainError.self) { try await store.update(stale, expectedVersion: 1) }
            #expect(error?.code == .versionConflict)
            #expect(error?.message.contains("1") == true)
            #expect(error?.message.contains("2") == true)
            #expect(error == DomainError.versionConflict(expected: 1, actual: 2))
            #expect(try await store.user(id: user.id) == user)
        }
    }

    @Test(arguments: Adapter.allCases)
    func updateToATakenEmailOrFirebaseUIDIsRefused(_ adapter: Adapter) async throws {
        try await adapter.withStore { store in
            let ada = try Fixture.user(1, email: "ada@example.com", firebaseUID: "firebase-ada")
            let bob = try Fixture.user(2, email: "bob@example.com", firebaseUID: "firebase-bob")
            try await store.create(ada)
            try await store.create(bob)

            var changed = bob
            changed.email = try Email("Ada@Example.com")
            changed.version = 2
            let email = await #expect(throws: DomainError.self) { try await store.update(changed, expectedVersion: 1) }
            #expect(email?.code == .alreadyExists)
            #expect(email?.message == "a user with email Ada@Example.com already exists")

            changed = bob
            changed.firebaseUID = "firebase-ada"
            changed.version = 2
            let uid = await #expect(throws: DomainError.self) { try await store.update(changed, expectedVersion: 1) }
            #expect(uid?.code == .alreadyExists)
            #expect(uid?.message == "Firebase user firebase-ada already has a user")

            #expect(try await store.user(id: bob.id) == bob)
        }
    }

    @Test(arguments: Adapter.allCases)
    func updateOfAMissingUserIsNotFound(_ adapter: Adapter) async throws {
        try await adapter.withStore { store in
            let error = await #expect(throws: DomainError.self) {
                try await store.update(Fixture.user(1), expectedVersion: 1)
            }
            #expect(error?.code == .notFound)
            let count = try await store.count(activeOnly: false)
            #expect(count == 0)
        }
    }

    @Test(arguments: Adapter.allCases)
    func deleteChecksTheVersionWhenGivenOne(_ adapter: Adapter) async throws {
        try await adapter.withStore { store in
            let ada = try Fixture.user(1)
            let bob = try Fixture.user(2)
            try await store.create(ada)
            try await store.create(bob)

            let conflict = await #expect(throws: DomainError.self) { try await store.delete(id: ada.id, expectedVersion: 7) }
            #expect(conflict == DomainError.versionConflict(expected: 7, actual: 1))
            #expect(try await store.user(id: ada.id) == ada)

            #expect(try await store.delete(id: ada.id, expectedVersion: 1) == ada)
            #expect(try await store.delete(id: bob.id, expectedVersion: nil) == bob)
            #expect(try await store.user(id: ada.id) == nil)
            #expect(try await store.user(email: ada.email) == nil)
            #expect(try await store.user(firebaseUID: bob.firebaseUID) == nil)

            let missing = await #expect(throws: DomainError.self) { try await store.delete(id: ada.id, expectedVersion: nil) }
            #expect(missing?.code == .notFound)

            // Its email and Firebase uid are free again.
            try await store.create(Fixture.user(3, email: ada.email.value, firebaseUID: ada.firebaseUID))
        }
    }

    @Test(arguments: Adapter.allCases)
    func deleteRemovesTheUsersSessions(_ adapter: Adapter) async throws {
        try await adapter.withStore { store in
            let ada = try Fixture.user(1)
            let bob = try Fixture.user(2)
            try await store.create(ada)
            try await store.create(bob)
            for n in 1...3 { try await store.create(Fixture.session(n, of: ada.id)) }
            try await store.create(Fixture.session(4, of: bob.id))

            _ = try await store.delete(id: ada.id, expectedVersion: nil)

            for n in 1...3 { #expect(try await store.session(id: Fixture.sessionID(n)) == nil) }
            #expect(try await store.list(userID: ada.id, after: nil, limit: 10, includeRevoked: true).isEmpty)
            #expect(try await store.session(id: Fixture.sessionID(4)) != nil)
        }
    }

    @Test(arguments: Adapter.allCases, [false, true])
    func listPagesInIdOrder(_ adapter: Adapter, activeOnly: Bool) async throws {
        try await adapter.withStore { store in
            // Created out of order; every third inactive.
            let users = try [7, 3, 11, 0, 5, 9, 1, 10, 4, 8, 2, 6].map { try Fixture.user($0, isActive: $0 % 3 != 0) }
            for user in users { try await store.create(user) }
            let expected = users.filter { !activeOnly || $0.isActive }.sorted { $0.id < $1.id }

            var pages: [[User]] = []
            var cursor: UserID?
            repeat {
                let page = try await store.list(after: cursor, limit: 3, activeOnly: activeOnly)
                pages.append(page)
                cursor = page.last?.id
            } while pages.last?.count == 3

            #expect(pages.dropLast().allSatisfy { $0.count == 3 })
            #expect(pages.flatMap { $0 } == expected)
            #expect(try await store.list(after: nil, limit: 0, activeOnly: activeOnly).isEmpty)
            #expect(try await store.list(after: nil, limit: -1, activeOnly: activeOnly).isEmpty)
            #expect(try await store.list(after: expected.last?.id, limit: 5, activeOnly: activeOnly).isEmpty)
            // The cursor need not be a stored id.
            #expect(try await store.list(after: Fixture.userID(4, sequence: 9), limit: 100, activeOnly: activeOnly)
                == expected.filter { $0.id > Fixture.userID(4, sequence: 9) })
        }
    }

    @Test(arguments: Adapter.allCases, [false, true])
    func pagingNeitherRepeatsNorSkipsWhileUsersComeAndGo(_ adapter: Adapter, activeOnly: Bool) async throws {
        try await adapter.withStore { store in
            // Originals every 10 ms, so users can be added just before and just after any cursor.
            var live: [UserID: User] = [:]
            for n in stride(from: 0, to: 300, by: 10) {
                let user = try Fixture.user(n, isActive: n % 30 != 0)
                try await store.create(user)
                live[user.id] = user
            }
            var mustAppear = Set(live.values.filter { !activeOnly || $0.isActive }.map(\.id))
            var mustNotAppear: Set<UserID> = []

            var seen: [UserID] = []
            var cursor: UserID?
            var round: UInt64 = 0
            while true {
                let page = try await store.list(after: cursor, limit: 4, activeOnly: activeOnly)
                guard let last = page.last else { break }
                seen += page.map(\.id)
                cursor = last.id
                round += 1

                // Behind the cursor: must not show up.
                let behind = try Fixture.user(
                    UserID(ULID(milliseconds: last.id.ulid.milliseconds - 1, randomHigh: 1, randomLow: round)))
                try await store.create(behind)
                mustNotAppear.insert(behind.id)
                // Just ahead of the cursor, while originals remain ahead (so the walk ends): must show up.
                if live.keys.contains(where: { $0 > last.id }), let next = last.id.ulid.successor {
                    let ahead = try Fixture.user(UserID(next), isActive: true)
                    try await store.create(ahead)
                    mustAppear.insert(ahead.id)
                }
                // An original not reached yet: gone before it is reached, so it must not show up.
                if let doomed = live.keys.filter({ $0 > last.id }).max() {
                    _ = try await store.delete(id: doomed, expectedVersion: nil)
                    live[doomed] = nil
                    mustAppear.remove(doomed)
                    mustNotAppear.insert(doomed)
                }
            }

            #expect(zip(seen, seen.dropFirst()).allSatisfy { $0 < $1 }, "ascending, so no repeats")
            #expect(mustAppear.subtracting(seen).isEmpty, "skipped")
            #expect(mustNotAppear.intersection(seen).isEmpty, "listed what was behind the cursor or deleted")
        }
    }

    @Test(arguments: Adapter.allCases)
    func countCountsAllOrActiveUsers(_ adapter: Adapter) async throws {
        try await adapter.withStore { store in
            #expect(try await store.count(activeOnly: false) == 0)
            #expect(try await store.count(activeOnly: true) == 0)
            for n in 0..<10 { try await store.create(Fixture.user(n, isActive: n < 7)) }
            #expect(try await store.count(activeOnly: false) == 10)
            #expect(try await store.count(activeOnly: true) == 7)

            _ = try await store.delete(id: Fixture.userID(0), expectedVersion: nil)
            _ = try await store.delete(id: Fixture.userID(9), expectedVersion: nil)
            #expect(try await store.count(activeOnly: false) == 8)
            #expect(try await store.count(activeOnly: true) == 6)
        }
    }

    @Test(arguments: Adapter.allCases)
    func concurrentUpdatesOfOneVersionHaveOneWinner(_ adapter: Adapter) async throws {
        try await adapter.withStore { store in
            let user = try Fixture.user(1)
            try await store.create(user)

            let outcomes = try await withThrowingTaskGroup(of: (Int, DomainError.Code?).self) { group in
                for writer in 0..<20 {
                    var changed = user
                    changed.displayName = try DisplayName("Writer \(writer)")
                    changed.version = 2
                    group.addTask {
                        do {
                            try await store.update(changed, expectedVersion: 1)
                            return (writer, nil)
                        } catch let error as DomainError {
                            return (writer, error.code)
                        }
                    }
                }
                return try await group.reduce(into: []) { $0.append($1) }
            }

            let winners = outcomes.filter { $0.1 == nil }.map(\.0)
            #expect(winners.count == 1)
            #expect(outcomes.filter { $0.1 == .versionConflict }.count == 19)
            let stored = try #require(try await store.user(id: user.id))
            #expect(stored.version == 2)
            #expect(stored.displayName.value == "Writer \(winners.first ?? -1)")
        }
    }
}
