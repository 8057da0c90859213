import ProtoRuntime
import Testing

@Suite("JSONWriter")
struct JSONWriterTests {
    @Test func writesCompactJSONWithAutomaticCommas() {
        var writer = JSONWriter()
        writer.beginObject()
        writer.key("a")
        writer.beginArray()
        writer.int32(1)
        writer.bool(true)
        writer.null()
        writer.string("x")
        writer.beginObject()
        writer.endObject()
        writer.beginArray()
        writer.endArray()
        writer.endArray()
        writer.key("b")
        writer.beginObject()
        writer.key("c")
        writer.rawNumber("-1.5e3")
        writer.key("d")
        writer.bool(false)
        writer.endObject()
        writer.key("e")
        writer.bytes([1, 2, 3, 255])
        writer.endObject()
        #expect(writer.string == #"{"a":[1,true,null,"x",{},[]],"b":{"c":-1.5e3,"d":false},"e":"AQID/w=="}"#)
        #expect(writer.bytes == Array(writer.string.utf8))
    }

    @Test func emptyWriter() {
        let writer = JSONWriter()
        #expect(writer.bytes.isEmpty)
        #expect(writer.string == "")
    }

    @Test(arguments: [
        ("", #""""#),
        ("plain", #""plain""#),
        ("quote\"backslash\\slash/", #""quote\"backslash\\slash/""#),
        ("\n\t\r\u{8}\u{C}", #""\n\t\r\b\f""#),
        ("\u{0}\u{1}\u{B}\u{E}\u{1A}\u{1F}", #""\u0000\u0001\u000b\u000e\u001a\u001f""#),
        ("\u{7F} é€😀\u{2028}\u{2029}", "\"\u{7F} é€😀\u{2028}\u{2029}\""),
        ("a\"b\"c", #""a\"b\"c""#),
    ])
    func escapesStrings(input: String, expected: String) throws {
        var writer = JSONWriter()
        writer.string(input)
        #expect(writer.string == expected)
        #expect(try JSONParser.parse(writer.bytes) == .string(input))

        var keyed = JSONWriter()
        keyed.beginObject()
        keyed.key(input)
        keyed.null()
        keyed.endObject()
        #expect(keyed.string == "{" + expected + ":null}")
    }

    @Test func integers() {
        var writer = JSONWriter()
        writer.beginArray()
        writer.int32(.min)
        writer.int32(.max)
        writer.int32(0)
        writer.uint32(.max)
        writer.int64(.min)
        writer.int64(.max)
        writer.int64(-1)
        writer.uint64(.max)
        writer.uint64(0)
        writer.endArray()
        #expect(writer.string == #"[-2147483648,2147483647,0,4294967295,"-9223372036854775808","9223372036854775807","-1","18446744073709551615","0"]"#)
    }

    @Test(arguments: [
        (1.0, "1.0"),
        (-2.5, "-2.5"),
        (0.1, "0.1"),
        (1e-5, "1e-05"),
        (1e16, "1e+16"),
        (1e15, "1000000000000000.0"),
        (123456789.0, "123456789.0"),
        (-0.0, "-0.0"),
        (.leastNonzeroMagnitude, "5e-324"),
        (1.7976931348623157e308, "1.7976931348623157e+308"),
        (.nan, #""NaN""#),
        (.infinity, #""Infinity""#),
        (-.infinity, #""-Infinity""#),
    ] as [(Double, String)])
    func doubles(value: Double, expected: String) {
        var writer = JSONWriter()
        writer.double(value)
        #expect(writer.string == expected)
    }

    @Test(arguments: [
        (1.0, "1.0"),
        (0.1, "0.1"),
        (Float.greatestFiniteMagnitude, "3.4028235e+38"),
        (.leastNonzeroMagnitude, "1e-45"),
        (123456789.0, "1.2345679e+08"),
        (.nan, #""NaN""#),
        (.infinity, #""Infinity""#),
        (-.infinity, #""-Infinity""#),
    ] as [(Float, String)])
    func floats(value: Float, expected: String) {
        var writer = JSONWriter()
        writer.float(value)
        #expect(writer.string == expected)
    }

    @Test func floatingPointRoundTripsThroughParserAndScalars() throws {
        var random = JSONTestRNG(seed: 0xF10A7)
        for _ in 0..<2_000 {
            let double = Double(bitPattern: random.next())
            var writer = JSONWriter()
            writer.double(double)
            let parsed = try JSONParser.parse(writer.bytes).protoDouble(field: "d")
            #expect(parsed.bitPattern == double.bitPattern || (parsed.isNaN && double.isNaN), "\(double)")

            let float = Float(bitPattern: UInt32(truncatingIfNeeded: random.next()))
            var floatWriter = JSONWriter()
            floatWriter.float(float)
            let parsedFloat = try JSONParser.parse(floatWriter.bytes).protoFloat(field: "f")
            #expect(parsedFloat.bitPattern == float.bitPattern || (parsedFloat.isNaN && float.isNaN), "\(float)")
        }
    }

    @Test func writesValueTrees() {
        let tree = JSONValue.object(JSONObject([
            (key: "z", value: .array([.number("1"), .number("-0.5e-3"), .null, .bool(false)])),
            (key: "a\n", value: .object(JSONObject([(key: "", value: .string("\u{1}"))]))),
            (key: "e", value: .array([.array([]), .object(JSONObject())])),
        ]))
        var writer = JSONWriter()
        writer.value(tree)
        #expect(writer.string == #"{"z":[1,-0.5e-3,null,false],"a\n":{"":"\u0001"},"e":[[],{}]}"#)

        var mixed = JSONWriter()
        mixed.beginArray()
        mixed.value(.string("x"))
        mixed.value(tree)
        mixed.int32(7)
        mixed.endArray()
        #expect(mixed.string == "[\"x\"," + writer.string + ",7]")
    }

    @Test func writesDeepTreesIteratively() throws {
        var tree = JSONValue.null
        for level in 0..<1_000 {
            tree = level.isMultiple(of: 2) ? .array([tree]) : .object(JSONObject([(key: "k", value: tree)]))
        }
        var writer = JSONWriter()
        writer.value(tree)
        #expect(writer.bytes.count == 500 * 2 + 500 * 6 + 4)
        #expect(try JSONParser.parse(writer.bytes, maxDepth: 1_000) == tree)
    }

    @Test func randomTreesRoundTrip() throws {
        var random = JSONTestRNG(seed: 20_240_601)
        for _ in 0..<400 {
            let tree = randomValue(&random, depth: 0)
            var writer = JSONWriter()
            writer.value(tree)
            let parsed = try JSONParser.parse(writer.bytes)
            #expect(parsed == tree)
            var again = JSONWriter()
            again.value(parsed)
            #expect(again.bytes == writer.bytes)
        }
    }
}

/// A small deterministic generator (SplitMix64) so random tests are reproducible.
struct JSONTestRNG: RandomNumberGenerator {
    private var state: UInt64

    init(seed: UInt64) {
        state = seed
    }

    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

private let stringAlphabet: [Unicode.Scalar] = [
    "a", "Z", "0", " ", "\"", "\\", "/", "\n", "\t", "\r", "\u{0}", "\u{8}", "\u{C}", "\u{1F}", "\u{7F}",
    "é", "€", "\u{2028}", "\u{FFFF}", "😀", "\u{10FFFF}",
]

private func randomString(_ random: inout JSONTestRNG) -> String {
    var scalars = String.UnicodeScalarView()
    for _ in 0..<Int.random(in: 0...8, using: &random) {
        scalars.append(stringAlphabet.randomElement(using: &random) ?? "a")
    }
    return String(scalars)
}

private func randomNumberLiteral(_ random: inout JSONTestRNG) -> String {
    var literal = Bool.random(using: &random) ? "-" : ""
    literal += Bool.random(using: &random) ? "0" : String(UInt64.random(in: 1...UInt64.max, using: &random))
    if Bool.random(using: &random) {
        literal += "." + String(UInt32.random(in: 0...999_999, using: &random))
    }
    if Bool.random(using: &random) {
        literal += ["e", "E", "e+", "e-", "E-"].randomElement(using: &random) ?? "e"
        literal += String(Int.random(in: 0...400, using: &random))
    }
    return literal
}

private func randomValue(_ random: inout JSONTestRNG, depth: Int) -> JSONValue {
    let kind = Int.random(in: 0..<(depth < 5 ? 7 : 5), using: &random)
    switch kind {
    case 0: return .null
    case 1: return .bool(Bool.random(using: &random))
    case 2: return .number(randomNumberLiteral(&random))
    case 3, 4: return .string(randomString(&random))
    case 5: return .array((0..<Int.random(in: 0...4, using: &random)).map { _ in randomValue(&random, depth: depth + 1) })
    default:
        var object = JSONObject()
        var used = Set<String>()
        for _ in 0..<Int.random(in: 0...4, using: &random) {
            let key = randomString(&random)
            if used.insert(key).inserted {
                object.entries.append((key: key, value: randomValue(&random, depth: depth + 1)))
            }
        }
        return .object(object)
    }
}
