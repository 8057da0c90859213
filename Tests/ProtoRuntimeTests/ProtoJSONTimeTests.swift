import ProtoRuntime
import Testing

/// Expected values come from `google.protobuf.json_format` 7.36 (Python) unless marked "stricter",
/// which flags inputs Python's lenient `strptime`/`int()`/`float()` parsing accepts but RFC 3339 / proto3 do not.
@Suite("ProtoJSON well-known types")
struct ProtoJSONTimeTests {
    // MARK: Timestamp

    @Test(arguments: [
        (0, 0, "1970-01-01T00:00:00Z"),
        (0, 1, "1970-01-01T00:00:00.000000001Z"),
        (0, 1_000, "1970-01-01T00:00:00.000001Z"),
        (0, 1_000_000, "1970-01-01T00:00:00.001Z"),
        (0, 21_000_000, "1970-01-01T00:00:00.021Z"),
        (63_108_020, 21_000_000, "1972-01-01T10:00:20.021Z"),
        (-1, 999_999_999, "1969-12-31T23:59:59.999999999Z"),
        (-62_135_596_800, 0, "0001-01-01T00:00:00Z"),
        (253_402_300_799, 999_999_999, "9999-12-31T23:59:59.999999999Z"),
        (951_782_400, 0, "2000-02-29T00:00:00Z"),
        (1_583_020_800, 0, "2020-03-01T00:00:00Z"),
        (-62_104_060_800, 0, "0002-01-01T00:00:00Z"),
        (-2_208_988_800, 0, "1900-01-01T00:00:00Z"),
        (-86_400, 0, "1969-12-31T00:00:00Z"),
        (68_169_600, 0, "1972-02-29T00:00:00Z"),
        (946_684_799, 0, "1999-12-31T23:59:59Z"),
        (951_868_800, 0, "2000-03-01T00:00:00Z"),
        (4_107_542_400, 0, "2100-03-01T00:00:00Z"),
        (253_402_214_400, 0, "9999-12-31T00:00:00Z"),
        (153_260_660_279, 0, "6826-08-21T05:37:59Z"),
        (56_007_940_085, 465_623_510, "3744-10-27T01:08:05.465623510Z"),
        (-34_662_063_340, 999_000_000, "0871-08-08T17:04:20.999Z"),
        (166_741_532_310, 566_950_000, "7253-10-29T20:18:30.566950Z"),
        (-8_996_553_981, 0, "1684-11-28T05:13:39Z"),
        (52_192_178_865, 570_930_264, "3623-11-27T03:27:45.570930264Z"),
        (251_748_580_415, 550_708_000, "9947-08-06T17:13:35.550708Z"),
        (246_090_888_094, 827_425_000, "9768-04-23T04:01:34.827425Z"),
    ] as [(Int64, Int32, String)])
    func timestampVectors(seconds: Int64, nanos: Int32, text: String) throws {
        #expect(try ProtoJSONTime.formatTimestamp(seconds: seconds, nanos: nanos) == text)
        let parsed = try ProtoJSONTime.parseTimestamp(text)
        #expect(parsed.seconds == seconds)
        #expect(parsed.nanos == nanos)
    }

    @Test(arguments: [
        (253_402_300_800, 0, "Timestamp seconds 253402300800 out of range [-62135596800, 253402300799]"),
        (-62_135_596_801, 0, "Timestamp seconds -62135596801 out of range [-62135596800, 253402300799]"),
        (.max, 0, "Timestamp seconds 9223372036854775807 out of range [-62135596800, 253402300799]"),
        (.min, 0, "Timestamp seconds -9223372036854775808 out of range [-62135596800, 253402300799]"),
        (0, -1, "Timestamp nanos -1 out of range [0, 999999999]"),
        (0, 1_000_000_000, "Timestamp nanos 1000000000 out of range [0, 999999999]"),
    ] as [(Int64, Int32, String)])
    func formatTimestampRejects(seconds: Int64, nanos: Int32, message: String) {
        let error = #expect(throws: ProtoJSONError.self) { try ProtoJSONTime.formatTimestamp(seconds: seconds, nanos: nanos) }
        #expect(error?.message == message)
    }

    @Test(arguments: [
        ("1972-01-01T10:00:20.021-05:00", 63_126_020, 21_000_000),
        ("1972-01-01T10:00:20.021+05:30", 63_088_220, 21_000_000),
        ("1970-01-01T00:00:00-00:00", 0, 0),
        ("1970-01-01T00:00:00+00:00", 0, 0),
        ("1970-01-01T00:00:00.123456789+01:00", -3_600, 123_456_789),
        ("1969-12-31T23:59:59.5Z", -1, 500_000_000),
        ("1970-01-01T00:00:00.000000001Z", 0, 1),
        ("1970-01-01T00:00:00.1Z", 0, 100_000_000),
        ("1970-01-01T00:00:00.12345Z", 0, 123_450_000),
        ("2020-02-29T00:00:00Z", 1_582_934_400, 0),
        ("0001-01-01T00:30:00+00:30", -62_135_596_800, 0),
        ("9999-12-31T23:59:59.999999999Z", 253_402_300_799, 999_999_999),
        ("0001-01-01T00:00:00Z", -62_135_596_800, 0),
    ] as [(String, Int64, Int32)])
    func parseTimestampAccepts(text: String, seconds: Int64, nanos: Int32) throws {
        let parsed = try ProtoJSONTime.parseTimestamp(text)
        #expect(parsed.seconds == seconds)
        #expect(parsed.nanos == nanos)
    }

    @Test(arguments: [
        ("1972-01-01t10:00:20Z", "expected 'T' at position 10"),
        ("1972-01-01T10:00:20z", "expected 'Z' or a '+HH:MM'/'-HH:MM' offset"),
        ("1972-01-01T10:00:20.1234567891Z", "more than 9 fractional digits"),
        ("0001-01-01T00:00:00+00:01", "outside 0001-01-01T00:00:00Z...9999-12-31T23:59:59.999999999Z"),
        ("9999-12-31T23:59:59-00:01", "outside 0001-01-01T00:00:00Z...9999-12-31T23:59:59.999999999Z"),
        ("2021-02-29T00:00:00Z", "day out of range"),
        ("1970-01-01T23:59:60Z", "time of day out of range"),
        ("1970-01-01T00:00:00", "expected 'Z' or a '+HH:MM'/'-HH:MM' offset"),
        ("1970-01-01T00:00:00+0100", "expected ':' at position 22"),
        ("1970-01-01 00:00:00Z", "expected 'T' at position 10"),
        // stricter: Python accepts the following.
        ("1972-01-01T10:00:20.Z", "expected a digit after '.'"),
        ("1970-01-01T00:00:00+25:00", "time zone offset out of range"),
        ("1970-01-01T00:00:00+01:60", "time zone offset out of range"),
        ("1970-01-01T00:00:00+1:00", "expected a digit at position 21"),
        ("1970-1-1T00:00:00Z", "expected a digit at position 6"),
        // Also rejected by Python.
        ("0000-01-01T00:00:00Z", "year 0000 is out of range"),
        ("10000-01-01T00:00:00Z", "expected '-' at position 4"),
        ("1970-00-01T00:00:00Z", "month out of range"),
        ("1970-13-01T00:00:00Z", "month out of range"),
        ("1970-01-00T00:00:00Z", "day out of range"),
        ("1970-01-32T00:00:00Z", "day out of range"),
        ("1900-02-29T00:00:00Z", "day out of range"),
        ("1970-04-31T00:00:00Z", "day out of range"),
        ("1970-01-01T24:00:00Z", "time of day out of range"),
        ("1970-01-01T00:60:00Z", "time of day out of range"),
        ("1970-01-01T00:00:00Zx", "unexpected trailing characters"),
        ("1970-01-01T00:00:00+01:00:00", "unexpected trailing characters"),
        (" 1970-01-01T00:00:00Z", "expected a digit at position 0"),
        ("", "expected a digit at position 0"),
        ("1970-01-01T00:00:00.-1Z", "expected a digit after '.'"),
        ("١٩٧٠-01-01T00:00:00Z", "expected a digit at position 0"),
    ])
    func parseTimestampRejects(text: String, problem: String) {
        let error = #expect(throws: ProtoJSONError.self) { try ProtoJSONTime.parseTimestamp(text) }
        #expect(error?.message == "invalid Timestamp \(String(reflecting: text)): \(problem)")
    }

    @Test func timestampRoundTripsAcrossTheWholeRange() throws {
        var random = JSONTestRNG(seed: 3339)
        // Midnights spaced 97 days apart cover every month and leap-year pattern.
        for seconds in stride(from: Int64(-62_135_596_800), through: 253_402_300_799, by: 97 * 86_400) {
            let text = try ProtoJSONTime.formatTimestamp(seconds: seconds, nanos: 0)
            #expect(try ProtoJSONTime.parseTimestamp(text).seconds == seconds)
        }
        for _ in 0..<2_000 {
            let seconds = Int64.random(in: -62_135_596_800...253_402_300_799, using: &random)
            let nanos = Int32.random(in: 0...999_999_999, using: &random)
            let parsed = try ProtoJSONTime.parseTimestamp(try ProtoJSONTime.formatTimestamp(seconds: seconds, nanos: nanos))
            #expect(parsed == (seconds, nanos))
        }
    }

    @Test func consecutiveDaysAreContiguous() throws {
        // Over one full 400-year Gregorian cycle, each day's date must sort after the previous day's
        // and parse back to the same instant (checks civil-from-days against days-from-civil).
        var previous = ""
        var mismatches: [Int64] = []
        for day in stride(from: Int64(0), through: 146_097, by: 1) {
            let seconds = -62_135_596_800 + day * 86_400
            let text = try ProtoJSONTime.formatTimestamp(seconds: seconds, nanos: 0)
            let parsed = try ProtoJSONTime.parseTimestamp(text)
            if text <= previous || parsed.seconds != seconds {
                mismatches.append(seconds)
            }
            previous = text
        }
        #expect(mismatches.isEmpty)
        #expect(previous == "0401-01-01T00:00:00Z")
    }

    @Test func randomTimestampAndDurationStringsNeverCrash() {
        let alphabet = Array("0123456789-+:.TZtzs ")
        var random = JSONTestRNG(seed: 11)
        let template = Array("1970-01-01T00:00:00.000000000+00:00")
        for _ in 0..<5_000 {
            var characters = Bool.random(using: &random) ? template : Array("-315576000000.999999999s")
            for _ in 0..<Int.random(in: 1...3, using: &random) {
                let position = Int.random(in: 0..<characters.count, using: &random)
                characters[position] = alphabet.randomElement(using: &random) ?? "0"
            }
            _ = try? ProtoJSONTime.parseTimestamp(String(characters))
            _ = try? ProtoJSONTime.parseDuration(String(characters))
        }
    }

    // MARK: Duration

    @Test(arguments: [
        (1, 500_000_000, "1.500s"),
        (0, -1_000, "-0.000001s"),
        (-1, -500_000_000, "-1.500s"),
        (0, 0, "0s"),
        (5, 0, "5s"),
        (-5, 0, "-5s"),
        (0, 10, "0.000000010s"),
        (0, -999_999_999, "-0.999999999s"),
        (315_576_000_000, 999_999_999, "315576000000.999999999s"),
        (-315_576_000_000, -999_999_999, "-315576000000.999999999s"),
        (186_062_831_325, 880_770_000, "186062831325.880770s"),
        (-244_004_011_238, -766_676_000, "-244004011238.766676s"),
        (72_954_022_802, 125_730_654, "72954022802.125730654s"),
        (-79_099_591_424, -786_000_000, "-79099591424.786s"),
        (115_629_687_120, 0, "115629687120s"),
    ] as [(Int64, Int32, String)])
    func durationVectors(seconds: Int64, nanos: Int32, text: String) throws {
        #expect(try ProtoJSONTime.formatDuration(seconds: seconds, nanos: nanos) == text)
        let parsed = try ProtoJSONTime.parseDuration(text)
        #expect(parsed.seconds == seconds)
        #expect(parsed.nanos == nanos)
    }

    @Test(arguments: [
        (1, -1, "Duration seconds 1 and nanos -1 have opposite signs"),
        (-1, 1, "Duration seconds -1 and nanos 1 have opposite signs"),
        (315_576_000_001, 0, "Duration seconds 315576000001 out of range [-315576000000, 315576000000]"),
        (-315_576_000_001, 0, "Duration seconds -315576000001 out of range [-315576000000, 315576000000]"),
        (.min, 0, "Duration seconds -9223372036854775808 out of range [-315576000000, 315576000000]"),
        (0, 1_000_000_000, "Duration nanos 1000000000 out of range [-999999999, 999999999]"),
        (0, .min, "Duration nanos -2147483648 out of range [-999999999, 999999999]"),
    ] as [(Int64, Int32, String)])
    func formatDurationRejects(seconds: Int64, nanos: Int32, message: String) {
        let error = #expect(throws: ProtoJSONError.self) { try ProtoJSONTime.formatDuration(seconds: seconds, nanos: nanos) }
        #expect(error?.message == message)
    }

    @Test(arguments: [
        ("1s", 1, 0),
        ("-1s", -1, 0),
        ("1.5s", 1, 500_000_000),
        ("-0.5s", 0, -500_000_000),
        ("-0s", 0, 0),
        ("01s", 1, 0),
        ("0.123456789s", 0, 123_456_789),
        ("1.01s", 1, 10_000_000),
        ("315576000000s", 315_576_000_000, 0),
    ] as [(String, Int64, Int32)])
    func parseDurationAccepts(text: String, seconds: Int64, nanos: Int32) throws {
        let parsed = try ProtoJSONTime.parseDuration(text)
        #expect(parsed.seconds == seconds)
        #expect(parsed.nanos == nanos)
    }

    @Test(arguments: [
        (".5s", "expected a digit"),
        ("-.5s", "expected a digit"),
        ("315576000001s", "seconds out of range [-315576000000, 315576000000]"),
        ("-315576000001s", "seconds out of range [-315576000000, 315576000000]"),
        ("99999999999999999999999999s", "seconds out of range [-315576000000, 315576000000]"),
        ("1", "expected 's' at position 1"),
        ("1e3s", "expected 's' at position 1"),
        ("s", "expected a digit"),
        ("-s", "expected a digit"),
        ("", "expected a digit"),
        ("1ss", "unexpected trailing characters"),
        ("1.5S", "expected 's' at position 3"),
        // stricter: Python accepts the following.
        ("1.s", "expected a digit after '.'"),
        ("+1s", "expected a digit"),
        ("1.0000000001s", "more than 9 fractional digits"),
        ("1.5 s", "expected 's' at position 3"),
        ("1_0s", "expected 's' at position 1"),
        (" 1s", "expected a digit"),
    ])
    func parseDurationRejects(text: String, problem: String) {
        let error = #expect(throws: ProtoJSONError.self) { try ProtoJSONTime.parseDuration(text) }
        #expect(error?.message == "invalid Duration \(String(reflecting: text)): \(problem)")
    }

    @Test func durationRoundTrips() throws {
        var random = JSONTestRNG(seed: 1_500)
        for _ in 0..<2_000 {
            let seconds = Int64.random(in: -315_576_000_000...315_576_000_000, using: &random)
            var nanos = Int32.random(in: 0...999_999_999, using: &random)
            if seconds < 0 || (seconds == 0 && Bool.random(using: &random)) {
                nanos = -nanos
            }
            let parsed = try ProtoJSONTime.parseDuration(try ProtoJSONTime.formatDuration(seconds: seconds, nanos: nanos))
            #expect(parsed == (seconds, nanos))
        }
    }

    // MARK: FieldMask

    @Test(arguments: [
        (["foo_bar", "baz"], "fooBar,baz"),
        (["_foo"], "Foo"),
        (["a.b_c.d"], "a.bC.d"),
        ([], ""),
        (["foo_bar_baz"], "fooBarBaz"),
        (["a", ""], "a,"),
        (["x_y.z"], "xY.z"),
        (["foo1", "é_b"], "foo1,éB"),
    ] as [([String], String)])
    func formatFieldMask(paths: [String], expected: String) throws {
        #expect(try ProtoJSONTime.formatFieldMask(paths: paths) == expected)
        #expect(try ProtoJSONTime.parseFieldMask(expected) == paths)
    }

    @Test(arguments: [
        ("foo__bar", "the character after '_' must be a lowercase letter"),
        ("foo_1", "the character after '_' must be a lowercase letter"),
        ("foo_.bar", "the character after '_' must be a lowercase letter"),
        ("Foo", "must not contain uppercase letters"),
        ("fooBar", "must not contain uppercase letters"),
        ("foo_", "must not end with '_'"),
    ])
    func formatFieldMaskRejects(path: String, problem: String) {
        let error = #expect(throws: ProtoJSONError.self) { try ProtoJSONTime.formatFieldMask(paths: ["ok", path]) }
        #expect(error?.message == "invalid FieldMask path \(String(reflecting: path)): \(problem)")
    }

    @Test(arguments: [
        ("fooBar,baz", ["foo_bar", "baz"]),
        ("", []),
        ("fooBar.bazQux", ["foo_bar.baz_qux"]),
        ("FooBar", ["_foo_bar"]),
        ("a,,b", ["a", "", "b"]),
        ("foo1Bar", ["foo1_bar"]),
        (",", ["", ""]),
    ] as [(String, [String])])
    func parseFieldMask(text: String, expected: [String]) throws {
        #expect(try ProtoJSONTime.parseFieldMask(text) == expected)
    }

    @Test func parseFieldMaskRejectsUnderscores() {
        let error = #expect(throws: ProtoJSONError.self) { try ProtoJSONTime.parseFieldMask("ok,foo_bar") }
        #expect(error?.message == #"invalid FieldMask path "foo_bar": must not contain '_'"#)
    }
}
