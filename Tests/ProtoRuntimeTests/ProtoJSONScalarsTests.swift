import ProtoRuntime
import Testing

/// Cases marked "python" were checked against `google.protobuf.json_format` 7.36 (wrapper types);
/// "stricter" marks inputs Python's lenient `int()`/`float()` parsing accepts but the proto3 JSON grammar does not.
@Suite("ProtoJSON scalars")
struct ProtoJSONScalarsTests {
    // MARK: int32

    @Test(arguments: [
        (JSONValue.number("2147483647"), Int32.max),  // python
        (.number("-2147483648"), Int32.min),  // python
        (.string("2147483647"), Int32.max),
        (.string("-2147483648"), Int32.min),
        (.number("0"), 0),
        (.number("-0"), 0),  // python
        (.string("-0"), 0),  // python
        (.number("1e5"), 100_000),  // python
        (.string("1e5"), 100_000),  // python
        (.number("1E2"), 100),  // python
        (.number("100000.000"), 100_000),  // python
        (.string("1.0"), 1),  // python
        (.number("2147483647.0"), Int32.max),  // python
        (.number("21474836.47e2"), Int32.max),  // python
        (.number("-214748364.8e1"), Int32.min),
        (.number("1000e-3"), 1),
        (.number("1e+0"), 1),
        (.number("0.0e10"), 0),
        (.number("-0.000"), 0),
        (.number("0e99999999999999999999"), 0),
        (.number("0.00000000000000000000000000001e29"), 1),
    ])
    func int32Accepts(value: JSONValue, expected: Int32) throws {
        #expect(try value.protoInt32(field: "fInt32") == expected)
    }

    @Test(arguments: [
        (JSONValue.number("2147483648"), #"field "fInt32": value 2147483648 is out of range for int32"#),  // python
        (.number("-2147483649"), #"field "fInt32": value -2147483649 is out of range for int32"#),  // python
        (.string("2147483648"), #"field "fInt32": value "2147483648" is out of range for int32"#),
        (.number("1e10"), #"field "fInt32": value 1e10 is out of range for int32"#),
        (.string("1e99999999999999999999999"), #"field "fInt32": value "1e99999999999999999999999" is out of range for int32"#),
        (.number("1.5"), #"field "fInt32": value 1.5 is not an integer"#),  // python
        (.string("1.5"), #"field "fInt32": value "1.5" is not an integer"#),  // python
        (.number("1e-5"), #"field "fInt32": value 1e-5 is not an integer"#),  // python
        (.number("2147483647.5"), #"field "fInt32": value 2147483647.5 is not an integer"#),
        (.number("1e-99999999999999999999"), #"field "fInt32": value 1e-99999999999999999999 is not an integer"#),
        (.string("01"), #"field "fInt32": value "01" is not a valid int32"#),  // stricter: python accepts
        (.string("+1"), #"field "fInt32": value "+1" is not a valid int32"#),  // stricter: python accepts
        (.string(" 1"), #"field "fInt32": value " 1" is not a valid int32"#),  // python
        (.string("1 "), #"field "fInt32": value "1 " is not a valid int32"#),  // python
        (.string(""), #"field "fInt32": value "" is not a valid int32"#),  // python
        (.string("0x10"), #"field "fInt32": value "0x10" is not a valid int32"#),  // python
        (.string("1."), #"field "fInt32": value "1." is not a valid int32"#),
        (.string(".5"), #"field "fInt32": value ".5" is not a valid int32"#),
        (.string("1e"), #"field "fInt32": value "1e" is not a valid int32"#),
        (.string("NaN"), #"field "fInt32": value "NaN" is not a valid int32"#),
        (.string("Infinity"), #"field "fInt32": value "Infinity" is not a valid int32"#),
        (.string("١"), #"field "fInt32": value "١" is not a valid int32"#),
        (.number("bogus"), #"field "fInt32": value bogus is not a valid int32"#),
        (.bool(true), #"field "fInt32": expected a number or numeric string for int32, got a boolean"#),  // python
        (.null, #"field "fInt32": expected a number or numeric string for int32, got null"#),  // python
        (.array([]), #"field "fInt32": expected a number or numeric string for int32, got an array"#),
        (.object(JSONObject()), #"field "fInt32": expected a number or numeric string for int32, got an object"#),
    ])
    func int32Rejects(value: JSONValue, message: String) {
        let error = #expect(throws: ProtoJSONError.self) { try value.protoInt32(field: "fInt32") }
        #expect(error?.message == message)
        #expect(error?.description == message)
    }

    @Test func hugeLiteralsAreEvaluatedExactly() throws {
        let digits = "9" + String(repeating: "0", count: 100_000)
        let error = #expect(throws: ProtoJSONError.self) { try JSONValue.number(digits).protoInt64(field: "n") }
        #expect(error?.message == "field \"n\": value \(digits.prefix(64))… is out of range for int64")
        let tinyFraction = "0." + String(repeating: "0", count: 100_000) + "1e100000"
        #expect(throws: ProtoJSONError.self) { try JSONValue.number(tinyFraction).protoInt64(field: "n") }
        let exactOne = "0." + String(repeating: "0", count: 100_000) + "1e100001"
        #expect(try JSONValue.number(exactOne).protoInt64(field: "n") == 1)
    }

    @Test func equivalentSpellingsOfRandomIntegersConvertExactly() throws {
        var random = JSONTestRNG(seed: 0x1E5)
        for _ in 0..<1_000 {
            let value = Int64(bitPattern: random.next()) >> Int.random(in: 0...63, using: &random)
            let digits = String(value.magnitude)
            let sign = value < 0 ? "-" : ""
            // Move the decimal point left by `shift` and compensate with the exponent.
            let shift = Int.random(in: 0..<digits.count, using: &random)
            let split = digits.index(digits.endIndex, offsetBy: -shift)
            let fraction = shift > 0 ? "." + digits[split...] : ""
            let spellings = [
                sign + digits,
                sign + digits + ".000",
                sign + digits[..<split] + fraction + "e" + String(shift),
                value == 0 ? "0e-1" : sign + digits + "0e-1",
            ]
            for spelling in spellings {
                #expect(try JSONValue.number(spelling).protoInt64(field: "i") == value, "\(spelling)")
                #expect(try JSONValue.string(spelling).protoInt64(field: "i") == value, "\(spelling)")
                #expect((try? JSONValue.number(spelling).protoInt32(field: "i")) == Int32(exactly: value))
                #expect((try? JSONValue.number(spelling).protoUInt64(field: "i")) == UInt64(exactly: value))
            }
        }
    }

    @Test func randomNumericStringsNeverCrash() {
        let alphabet = Array("0123456789-+.eE xN")
        var random = JSONTestRNG(seed: 7)
        for _ in 0..<5_000 {
            let text = String((0..<Int.random(in: 0...12, using: &random)).map { _ in alphabet.randomElement(using: &random) ?? "0" })
            for value in [JSONValue.string(text), .number(text)] {
                _ = try? value.protoInt32(field: "f")
                _ = try? value.protoUInt32(field: "f")
                _ = try? value.protoInt64(field: "f")
                _ = try? value.protoUInt64(field: "f")
                _ = try? value.protoFloat(field: "f")
                _ = try? value.protoDouble(field: "f")
            }
            _ = try? ProtoJSONMapKey.int32(text, field: "m")
            _ = try? ProtoJSONMapKey.uint64(text, field: "m")
        }
    }

    // MARK: uint32 / int64 / uint64

    @Test(arguments: [
        (JSONValue.number("4294967295"), UInt32.max),  // python
        (.string("4294967295"), UInt32.max),
        (.number("-0"), 0),  // python
        (.string("-0"), 0),  // python
        (.number("-0.0e5"), 0),
        (.number("4.294967295e9"), UInt32.max),
    ])
    func uint32Accepts(value: JSONValue, expected: UInt32) throws {
        #expect(try value.protoUInt32(field: "u") == expected)
    }

    @Test(arguments: [
        JSONValue.number("4294967296"),  // python
        .number("-1"),  // python
        .string("-1"),
        .number("-1e0"),
        .number("4.2949672951e9"),
    ])
    func uint32Rejects(value: JSONValue) {
        #expect(throws: ProtoJSONError.self) { try value.protoUInt32(field: "u") }
    }

    @Test(arguments: [
        (JSONValue.number("9223372036854775807"), Int64.max),  // python
        (.string("9223372036854775807"), Int64.max),  // python
        (.number("-9223372036854775808"), Int64.min),  // python
        (.string("-9223372036854775808"), Int64.min),
        (.number("1e18"), 1_000_000_000_000_000_000),  // python
        (.string("1e18"), 1_000_000_000_000_000_000),  // python
        // Exact evaluation: Python goes through float and rejects this; it is exactly Int64.max.
        (.number("9223372036854775807.0"), Int64.max),
        (.number("922337203685477580.7e1"), Int64.max),
        (.number("-9.223372036854775808e18"), Int64.min),
        (.number("9007199254740993"), 9_007_199_254_740_993),  // 2^53 + 1, not representable as Double
    ])
    func int64Accepts(value: JSONValue, expected: Int64) throws {
        #expect(try value.protoInt64(field: "i") == expected)
    }

    @Test(arguments: [
        (JSONValue.number("9223372036854775808"), "out of range for int64"),  // python
        (.string("-9223372036854775809"), "out of range for int64"),  // python
        (.number("1e19"), "out of range for int64"),  // python
        (.number("18446744073709551616"), "out of range for int64"),
        (.number("100000000000000000000000"), "out of range for int64"),
        (.number("9223372036854775807.5"), "is not an integer"),
    ])
    func int64Rejects(value: JSONValue, problem: String) {
        let error = #expect(throws: ProtoJSONError.self) { try value.protoInt64(field: "i") }
        #expect(error?.message.hasSuffix(problem) == true)
    }

    @Test(arguments: [
        (JSONValue.number("18446744073709551615"), UInt64.max),  // python
        (.string("18446744073709551615"), UInt64.max),  // python
        (.number("1.8446744073709551615e19"), UInt64.max),
        (.number("1e19"), 10_000_000_000_000_000_000),
        (.string("-0"), 0),
    ])
    func uint64Accepts(value: JSONValue, expected: UInt64) throws {
        #expect(try value.protoUInt64(field: "u") == expected)
    }

    @Test(arguments: [
        JSONValue.number("18446744073709551616"),  // python
        .number("-1"),  // python
        .number("1.8446744073709551616e19"),
        .number("1e20"),
        .string("99999999999999999999"),
    ])
    func uint64Rejects(value: JSONValue) {
        #expect(throws: ProtoJSONError.self) { try value.protoUInt64(field: "u") }
    }

    // MARK: float / double

    @Test(arguments: [
        (JSONValue.number("1.5"), Float(1.5)),
        (.string("1.5"), 1.5),  // python
        (.string("1e5"), 100_000),  // python
        (.number("0.1"), 0.1),
        (.number("-0"), -0.0),
        (.number("1e-50"), 0),  // python: underflows to zero
        // Rounds to Float.greatestFiniteMagnitude; Python rejects it by comparing the Double value.
        (.number("3.4028235e38"), .greatestFiniteMagnitude),
        (.number("-3.4028235e38"), -.greatestFiniteMagnitude),
        (.number("340282356779733661637539395458142568447.9"), .greatestFiniteMagnitude),
        (.string("Infinity"), .infinity),  // python
        (.string("-Infinity"), -.infinity),  // python
    ])
    func floatAccepts(value: JSONValue, expected: Float) throws {
        #expect(try value.protoFloat(field: "f").bitPattern == expected.bitPattern)
    }

    @Test func floatAndDoubleAcceptQuotedNaN() throws {
        #expect(try JSONValue.string("NaN").protoFloat(field: "f").isNaN)  // python
        #expect(try JSONValue.string("NaN").protoDouble(field: "d").isNaN)  // python
    }

    @Test(arguments: [
        (JSONValue.number("3.4028236e38"), #"field "f": value 3.4028236e38 is out of range for float"#),  // python
        (.number("340282356779733661637539395458142568448"), #"field "f": value 340282356779733661637539395458142568448 is out of range for float"#),
        (.number("1e39"), #"field "f": value 1e39 is out of range for float"#),  // python
        (.number("-1e39"), #"field "f": value -1e39 is out of range for float"#),
        (.string("1e39"), #"field "f": value "1e39" is out of range for float"#),
        (.string("nan"), #"field "f": value "nan" is not a valid float"#),  // python
        (.string("inf"), #"field "f": value "inf" is not a valid float"#),  // stricter: python accepts
        (.string(" 1.5"), #"field "f": value " 1.5" is not a valid float"#),  // stricter: python accepts
        (.string("-Infinity "), #"field "f": value "-Infinity " is not a valid float"#),  // stricter: python accepts
        (.string("0x1p3"), #"field "f": value "0x1p3" is not a valid float"#),
        (.number("NaN"), #"field "f": value NaN is not a valid float"#),
        (.number("Infinity"), #"field "f": value Infinity is not a valid float"#),
        (.bool(true), #"field "f": expected a number or numeric string for float, got a boolean"#),  // stricter: python accepts
        (.null, #"field "f": expected a number or numeric string for float, got null"#),
    ])
    func floatRejects(value: JSONValue, message: String) {
        let error = #expect(throws: ProtoJSONError.self) { try value.protoFloat(field: "f") }
        #expect(error?.message == message)
    }

    @Test(arguments: [
        (JSONValue.number("1.7976931348623157e308"), Double.greatestFiniteMagnitude),  // python
        (.number("5e-324"), .leastNonzeroMagnitude),  // python
        (.number("1e-400"), 0),  // python
        (.string("-0"), -0.0),  // python
        (.number("-0.0"), -0.0),
        (.number("0.1"), 0.1),
        (.string("1e5"), 100_000),
        (.number("9007199254740993"), 9_007_199_254_740_992),
        (.string("Infinity"), .infinity),
        (.string("-Infinity"), -.infinity),
    ])
    func doubleAccepts(value: JSONValue, expected: Double) throws {
        #expect(try value.protoDouble(field: "d").bitPattern == expected.bitPattern)
    }

    @Test(arguments: [
        (JSONValue.number("1e400"), #"field "d": value 1e400 is out of range for double"#),  // python
        (.number("-1e400"), #"field "d": value -1e400 is out of range for double"#),  // python
        (.string("1e400"), #"field "d": value "1e400" is out of range for double"#),  // stricter: python gives inf
        (.string("01.5"), #"field "d": value "01.5" is not a valid double"#),  // stricter: python accepts
        (.string(".5"), #"field "d": value ".5" is not a valid double"#),  // stricter: python accepts
        (.string("infinity"), #"field "d": value "infinity" is not a valid double"#),
        (.string(""), #"field "d": value "" is not a valid double"#),
        (.array([.number("1")]), #"field "d": expected a number or numeric string for double, got an array"#),
    ])
    func doubleRejects(value: JSONValue, message: String) {
        let error = #expect(throws: ProtoJSONError.self) { try value.protoDouble(field: "d") }
        #expect(error?.message == message)
    }

    // MARK: bool / string / bytes

    @Test func bools() throws {
        #expect(try JSONValue.bool(true).protoBool(field: "b") == true)  // python
        #expect(try JSONValue.bool(false).protoBool(field: "b") == false)
        for value in [JSONValue.string("true"), .number("1"), .null] {  // python rejects "true" and 1
            #expect(throws: ProtoJSONError.self) { try value.protoBool(field: "b") }
        }
        let error = #expect(throws: ProtoJSONError.self) { try JSONValue.string("true").protoBool(field: "b") }
        #expect(error?.message == #"field "b": expected true or false, got a string"#)
    }

    @Test func strings() throws {
        #expect(try JSONValue.string("héllo").protoString(field: "s") == "héllo")
        let error = #expect(throws: ProtoJSONError.self) { try JSONValue.number("1").protoString(field: "s") }
        #expect(error?.message == #"field "s": expected a string, got a number"#)
    }

    @Test(arguments: [
        ("YWJj", Array("abc".utf8)),  // python
        ("YWI=", Array("ab".utf8)),  // python
        ("YWI", Array("ab".utf8)),  // python
        ("-_8=", [0xFB, 0xFF]),  // python
        ("+/8=", [0xFB, 0xFF]),  // python
        ("-_8", [0xFB, 0xFF]),
        ("YQ==", Array("a".utf8)),  // python
        ("YQ", Array("a".utf8)),  // python
        ("YR==", Array("a".utf8)),  // python: unused bits ignored
        ("", []),
    ] as [(String, [UInt8])])
    func bytesAccepts(text: String, expected: [UInt8]) throws {
        #expect(try JSONValue.string(text).protoBytes(field: "b") == expected)
    }

    @Test(arguments: [
        ("Y", #"field "b": invalid base64: invalid length: 1 data characters cannot encode whole bytes"#),  // python
        ("Y W", #"field "b": invalid base64: invalid character byte 32 at offset 1"#),  // python
        ("YQ=", #"field "b": invalid base64: incorrect padding"#),  // stricter: python accepts
        ("YWJj=", #"field "b": invalid base64: incorrect padding"#),  // stricter: python accepts
        ("YQ===", #"field "b": invalid base64: incorrect padding"#),  // stricter: python accepts
    ])
    func bytesRejects(text: String, message: String) {
        let error = #expect(throws: ProtoJSONError.self) { try JSONValue.string(text).protoBytes(field: "b") }
        #expect(error?.message == message)
    }

    @Test func bytesRejectsNonStrings() {
        let error = #expect(throws: ProtoJSONError.self) { try JSONValue.array([]).protoBytes(field: "b") }
        #expect(error?.message == #"field "b": expected a base64 string, got an array"#)
    }

    @Test func errorInitializers() {
        #expect(ProtoJSONError(message: "plain").description == "plain")
        #expect(ProtoJSONError(field: "a\"b", message: "bad").message == #"field "a\"b": bad"#)
    }

    // MARK: map keys

    @Test func int32MapKeys() throws {
        #expect(try ProtoJSONMapKey.int32("2147483647", field: "m") == .max)
        #expect(try ProtoJSONMapKey.int32("-2147483648", field: "m") == .min)
        #expect(try ProtoJSONMapKey.int32("0", field: "m") == 0)
        #expect(try ProtoJSONMapKey.int32("-0", field: "m") == 0)
        let range = #expect(throws: ProtoJSONError.self) { try ProtoJSONMapKey.int32("2147483648", field: "m") }
        #expect(range?.message == #"field "m": map key "2147483648" is out of range for int32"#)
        for key in ["-2147483649", "1e5", "1.0", "01", " 1", "1 ", "+1", "", "-", "abc", "0x1", "١"] {
            #expect(throws: ProtoJSONError.self, "\(key)") { try ProtoJSONMapKey.int32(key, field: "m") }
        }
        let invalid = #expect(throws: ProtoJSONError.self) { try ProtoJSONMapKey.int32("1e5", field: "m") }
        #expect(invalid?.message == #"field "m": map key "1e5" is not a valid int32"#)
    }

    @Test func otherIntegerMapKeys() throws {
        #expect(try ProtoJSONMapKey.uint32("4294967295", field: "m") == .max)
        #expect(throws: ProtoJSONError.self) { try ProtoJSONMapKey.uint32("4294967296", field: "m") }
        #expect(throws: ProtoJSONError.self) { try ProtoJSONMapKey.uint32("-1", field: "m") }
        #expect(try ProtoJSONMapKey.int64("9223372036854775807", field: "m") == .max)
        #expect(try ProtoJSONMapKey.int64("-9223372036854775808", field: "m") == .min)
        #expect(throws: ProtoJSONError.self) { try ProtoJSONMapKey.int64("9223372036854775808", field: "m") }
        #expect(throws: ProtoJSONError.self) { try ProtoJSONMapKey.int64("-9223372036854775809", field: "m") }
        #expect(try ProtoJSONMapKey.uint64("18446744073709551615", field: "m") == .max)
        #expect(throws: ProtoJSONError.self) { try ProtoJSONMapKey.uint64("18446744073709551616", field: "m") }
        #expect(throws: ProtoJSONError.self) { try ProtoJSONMapKey.uint64("1.5", field: "m") }
    }

    @Test func boolMapKeys() throws {
        #expect(try ProtoJSONMapKey.bool("true", field: "m") == true)
        #expect(try ProtoJSONMapKey.bool("false", field: "m") == false)
        for key in ["True", "FALSE", "1", "0", "", " true"] {
            #expect(throws: ProtoJSONError.self, "\(key)") { try ProtoJSONMapKey.bool(key, field: "m") }
        }
        let error = #expect(throws: ProtoJSONError.self) { try ProtoJSONMapKey.bool("yes", field: "m") }
        #expect(error?.message == #"field "m": map key "yes" is not "true" or "false""#)
    }
}
