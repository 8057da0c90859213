import GatewayApplication
import Testing

@Suite struct ULIDTests {
    @Test func roundTripsThroughTextAndBytes() throws {
        let ulid = ULID(milliseconds: 1_700_000_000_123, randomHigh: 0xBEEF, randomLow: 0x0123_4567_89AB_CDEF)
        #expect(ulid.description.count == 26)
        #expect(ULID(ulid.description) == ulid)
        #expect(ULID(ulid.description.lowercased()) == ulid)
        #expect(ULID(bytes: ulid.bytes) == ulid)
        #expect(ulid.milliseconds == 1_700_000_000_123)
    }

    @Test func knownSpelling() {
        // The spec's example layout: the maximum ULID is 7ZZZZZZZZZZZZZZZZZZZZZZZZZ.
        #expect(ULID(high: .max, low: .max).description == "7ZZZZZZZZZZZZZZZZZZZZZZZZZ")
        #expect(ULID(high: 0, low: 0).description == "00000000000000000000000000")
        #expect(ULID("01ARZ3NDEKTSV4RRFFQ69G5FAV")?.milliseconds == 1_469_922_850_259)  // the spec's example
    }

    @Test(arguments: ["", "01ARZ3NDEKTSV4RRFFQ69G5FA", "01ARZ3NDEKTSV4RRFFQ69G5FAVV", "81ARZ3NDEKTSV4RRFFQ69G5FAV",
                      "01ARZ3NDEKTSV4RRFFQ69G5FAU", "01ARZ3NDEKTSV4RRFFQ69G5FA!", "01ARZ3NDEKTSV4RRFFQ69G5FÄ"])
    func refusesMalformedText(_ text: String) {
        #expect(ULID(text) == nil)
    }

    @Test func textOrderIsByteOrder() {
        var random = SeededRandomNumberGenerator(seed: 7)
        let ulids = (0..<500).map { _ in ULID(high: random.next(), low: random.next()) }
        #expect(ulids.sorted().map(\.description) == ulids.map(\.description).sorted())
        #expect(ulids.sorted().map(\.bytes).map { $0.map { String($0, radix: 16) } } == ulids.sorted().map(\.bytes).map { $0.map { String($0, radix: 16) } })
    }
}

@Suite struct IDGeneratorTests {
    @Test func ulidsIncreaseWithinOneMillisecondAndWhenTheClockStepsBack() {
        let clock = FakeWallClock(UnixTime(seconds: 1_800_000_000))
        let ids = MonotonicIDGenerator(clock: clock, random: SeededRandomNumberGenerator(seed: 1))
        var previous = ids.ulid()
        for step in 0..<2000 {
            if step == 1000 { clock.set(UnixTime(seconds: 1_799_999_000)) }  // the wall clock jumps back
            let next = ids.ulid()
            #expect(next > previous)
            previous = next
        }
        clock.advance(seconds: 3600)
        #expect(ids.ulid().milliseconds == 1_800_002_600_000)  // past every earlier ULID again: the clock rules
    }

    @Test func uuidsAreVersion4() {
        let ids = MonotonicIDGenerator(clock: FakeWallClock(UnixTime(seconds: 0)))
        let uuid = ids.uuid()
        #expect(uuid.count == 36)
        #expect(Array(uuid)[14] == "4")
        #expect("89ab".contains(Array(uuid)[19]))
        #expect(ids.uuid() != uuid)
    }
}

@Suite struct EmailTests {
    @Test(arguments: ["a@b.co", "First.Last+tag@Example.COM", "  padded@example.org ", "ü@bücher.de", "x@sub-domain.example.io"])
    func accepts(_ text: String) throws {
        let email = try Email(text)
        #expect(email.canonical == email.value.lowercased())
    }

    @Test(arguments: ["", "   ", "plain", "@example.com", "a@", "a@@b.com", "a@b@c.com", "a b@c.com", "a@c", "a@-c.com",
                      "a@c-.com", "a@c..com", ".a@c.com", "a.@c.com", "a..b@c.com", "a@c.com.",
                      String(repeating: "a", count: 65) + "@c.com", "a@" + String(repeating: "b", count: 64) + ".com",
                      "a\u{0}@c.com", "a@" + String(repeating: "b.", count: 130) + "com"])
    func refusesNamingTheField(_ text: String) {
        #expect {
            try Email(text, field: "user.email")
        } throws: { error in
            let error = error as? DomainError
            return error?.code == .invalidArgument && error?.field == "user.email" && error?.message.hasPrefix("user.email: ") == true
        }
    }

    @Test func surroundingASCIIWhitespaceIsTrimmedIncludingCRLF() throws {
        #expect(try Email("a@b.co\r\n").value == "a@b.co")
        #expect(try Email("\t\r\n a@b.co \n").value == "a@b.co")
        #expect(try Email("a@b.co").value == "a@b.co")
        #expect(try DisplayName("Ada Lovelace\r\n").value == "Ada Lovelace")
    }

    @Test func uniquenessIsCaseInsensitive() throws {
        #expect(try Email("Ada@Example.com").canonical == Email("ada@example.COM").canonical)
    }
}

@Suite struct ProfileValueTests {
    @Test func displayNames() throws {
        #expect(try DisplayName("  Ada Lovelace ").value == "Ada Lovelace")
        #expect(throws: DomainError.self) { try DisplayName("") }
        #expect(throws: DomainError.self) { try DisplayName(" \t ") }
        #expect(throws: DomainError.self) { try DisplayName("tab\u{7}bell") }
        #expect(throws: DomainError.self) { try DisplayName(String(repeating: "x", count: 257)) }
        #expect(try DisplayName(String(repeating: "é", count: 256)).value.count == 256)
    }

    @Test func photoURLs() throws {
        #expect(try PhotoURL("") == .none)
        #expect(try PhotoURL("https://example.com/a.png").value == "https://example.com/a.png")
        for bad in ["ftp://example.com/a", "https://", "https:///path", "javascript:alert(1)", "https://a b.com/",
                    "https://example.com/" + String(repeating: "x", count: 2048)] {
            #expect(throws: DomainError.self, "\(bad)") { try PhotoURL(bad) }
        }
    }
}
