import ProtoRuntime
import Testing

@Suite("JSONParser")
struct JSONParserTests {
    @Test(arguments: [
        ("null", JSONValue.null),
        ("true", .bool(true)),
        ("false", .bool(false)),
        ("0", .number("0")),
        ("-0", .number("-0")),
        ("1.5e3", .number("1.5e3")),
        ("-1.5E-3", .number("-1.5E-3")),
        ("1E+2", .number("1E+2")),
        ("0.000", .number("0.000")),
        ("9223372036854775807", .number("9223372036854775807")),
        ("123456789012345678901234567890", .number("123456789012345678901234567890")),
        ("\"\"", .string("")),
        ("\"a\\\"b\"", .string("a\"b")),
        ("\"\\/\\b\\f\\n\\r\\t\\\\\"", .string("/\u{8}\u{C}\n\r\t\\")),
        ("\"\\u00e9\\u00C9\"", .string("éÉ")),
        ("\"\\u0000\"", .string("\u{0}")),
        ("\"\\ud83d\\ude00\"", .string("😀")),
        ("\"x\\uD83D\\uDE00y\"", .string("x😀y")),
        ("\"é€😀\u{2028}\"", .string("é€😀\u{2028}")),
        ("\"\u{7F}\"", .string("\u{7F}")),
        ("[]", .array([])),
        ("{}", .object(JSONObject())),
        (" \t\r\n[ 1 ,\t2 ]\n ", .array([.number("1"), .number("2")])),
        ("[[[]]]", .array([.array([.array([])])])),
        ("[{}, [], \"\", 0]", .array([.object(JSONObject()), .array([]), .string(""), .number("0")])),
        (
            "{\"b\":{\"c\":[null,true]},\"a\":1}",
            .object(JSONObject([
                (key: "b", value: .object(JSONObject([(key: "c", value: .array([.null, .bool(true)]))]))),
                (key: "a", value: .number("1")),
            ]))
        ),
        ("{\"\":1}", .object(JSONObject([(key: "", value: .number("1"))]))),
    ])
    func accepts(input: String, expected: JSONValue) throws {
        #expect(try JSONParser.parse(input) == expected)
        #expect(try JSONParser.parse(Array(input.utf8)) == expected)
        let fromRaw = try Array(input.utf8).withUnsafeBytes { try JSONParser.parse($0) }
        #expect(fromRaw == expected)
    }

    @Test(arguments: [
        ("", 0, "unexpected end of input, expected a value"),
        ("   ", 3, "unexpected end of input, expected a value"),
        ("[1,]", 3, "unexpected character ']', expected a value"),
        ("[,1]", 1, "unexpected character ',', expected a value"),
        ("{\"a\":1,}", 7, "expected a string key"),
        ("{,}", 1, "expected a string key"),
        ("{1:2}", 1, "expected a string key"),
        ("{'a':1}", 1, "expected a string key"),
        ("[1 2]", 3, "expected ',' or ']'"),
        ("{\"a\":1 \"b\":2}", 7, "expected ',' or '}'"),
        ("{\"a\" 1}", 5, "expected ':'"),
        ("{\"a\":1]", 6, "expected ',' or '}'"),
        ("[1}", 2, "expected ',' or ']'"),
        ("[", 1, "unexpected end of input, expected a value"),
        ("[1", 2, "unexpected end of input, expected ',' or ']'"),
        ("{", 1, "unexpected end of input, expected a string key"),
        ("{\"a\":", 5, "unexpected end of input, expected a value"),
        ("{\"a\"", 4, "unexpected end of input, expected ':'"),
        ("01", 0, "invalid number: leading zeros are not allowed"),
        ("-01", 0, "invalid number: leading zeros are not allowed"),
        ("-", 1, "invalid number: expected a digit"),
        ("--1", 1, "invalid number: expected a digit"),
        ("[-]", 2, "invalid number: expected a digit"),
        ("1.", 2, "invalid number: expected a digit after '.'"),
        ("1.e5", 2, "invalid number: expected a digit after '.'"),
        ("1e", 2, "invalid number: expected a digit in the exponent"),
        ("1e+", 3, "invalid number: expected a digit in the exponent"),
        (".5", 0, "unexpected character '.', expected a value"),
        ("+1", 0, "unexpected character '+', expected a value"),
        ("NaN", 0, "unexpected character 'N', expected a value"),
        ("Infinity", 0, "unexpected character 'I', expected a value"),
        ("-Infinity", 1, "invalid number: expected a digit"),
        ("0x10", 1, "unexpected character 'x' after the JSON value"),
        ("1e5.5", 3, "unexpected character '.' after the JSON value"),
        ("nul", 0, "invalid literal, expected 'null'"),
        ("tru", 0, "invalid literal, expected 'true'"),
        ("True", 0, "unexpected character 'T', expected a value"),
        ("falsy", 0, "invalid literal, expected 'false'"),
        ("truex", 4, "unexpected character 'x' after the JSON value"),
        ("[1] x", 4, "unexpected character 'x' after the JSON value"),
        ("1 2", 2, "unexpected character '2' after the JSON value"),
        ("{}{}", 2, "unexpected character '{' after the JSON value"),
        ("// c\n1", 0, "unexpected character '/', expected a value"),
        ("/* c */ 1", 0, "unexpected character '/', expected a value"),
        ("[1 /* c */]", 3, "expected ',' or ']'"),
        ("'a'", 0, "unexpected character ''', expected a value"),
        ("\"abc", 0, "unterminated string"),
        ("[\"abc\\", 5, "unterminated string"),
        ("\"\\x\"", 1, "invalid escape sequence \\x"),
        ("\"\\U0041\"", 1, "invalid escape sequence \\U"),
        ("\"\\u12\"", 1, "invalid \\u escape: expected 4 hex digits"),
        ("\"\\u12G4\"", 1, "invalid \\u escape: expected 4 hex digits"),
        ("\"\\uD800\"", 1, "unpaired high surrogate in \\u escape"),
        ("\"\\uD83Dx\"", 1, "unpaired high surrogate in \\u escape"),
        ("\"\\uD800\\u0041\"", 1, "unpaired high surrogate in \\u escape"),
        ("\"\\uD800\\uD800\"", 1, "unpaired high surrogate in \\u escape"),
        ("\"\\uD800\\u12\"", 7, "invalid \\u escape: expected 4 hex digits"),
        ("\"\\uDC00\"", 1, "unpaired low surrogate in \\u escape"),
        ("\"\\uDE00\\uD83D\"", 1, "unpaired low surrogate in \\u escape"),
        ("\"a\tb\"", 2, "unescaped control character 0x09 in string"),
        ("\"a\nb\"", 2, "unescaped control character 0x0A in string"),
        ("\"\u{0}\"", 1, "unescaped control character 0x00 in string"),
        ("\"\u{1F}\"", 1, "unescaped control character 0x1F in string"),
        ("{\"a\":1,\"a\":2}", 7, "duplicate key \"a\" in object"),
        ("{\"a\":1,\"\\u0061\":2}", 7, "duplicate key \"a\" in object"),
        ("[{\"x\":[],\"y\":{},\"x\":null}]", 16, "duplicate key \"x\" in object"),
        ("\u{FEFF}1", 0, "byte 0xEF, expected a value"),
        ("\u{0B}1", 0, "byte 0x0B, expected a value"),
        ("\u{0C}1", 0, "byte 0x0C, expected a value"),
        ("\u{A0}1", 0, "byte 0xC2, expected a value"),
        ("1\u{0}", 1, "byte 0x00 after the JSON value"),
    ])
    func rejects(input: String, offset: Int, message: String) {
        let error = #expect(throws: JSONError.self) { try JSONParser.parse(input) }
        #expect(error?.offset == offset)
        #expect(error?.message.hasSuffix(message) == true, "\(error?.message ?? "")")
        #expect(error?.description == "invalid JSON at byte \(offset): \(error?.message ?? "")")
    }

    @Test func errorMessageFormat() {
        let error = #expect(throws: JSONError.self) { try JSONParser.parse("{\"key\": [1, 2] \"x\"}") }
        #expect(error?.description == "invalid JSON at byte 15: expected ',' or '}'")
        #expect(JSONError(message: "boom").description == "invalid JSON: boom")
    }

    @Test(arguments: [
        [0x22, 0xFF, 0x22],  // never valid in UTF-8
        [0x22, 0x80, 0x22],  // lone continuation byte
        [0x22, 0xC0, 0x80, 0x22],  // overlong NUL
        [0x22, 0xC1, 0xBF, 0x22],  // overlong
        [0x22, 0xE0, 0x80, 0x80, 0x22],  // overlong 3-byte
        [0x22, 0xE0, 0x9F, 0xBF, 0x22],  // overlong 3-byte (U+07FF)
        [0x22, 0xED, 0xA0, 0x80, 0x22],  // encoded surrogate U+D800
        [0x22, 0xED, 0xBF, 0xBF, 0x22],  // encoded surrogate U+DFFF
        [0x22, 0xF0, 0x80, 0x80, 0x80, 0x22],  // overlong 4-byte
        [0x22, 0xF0, 0x8F, 0xBF, 0xBF, 0x22],  // overlong 4-byte (U+FFFF)
        [0x22, 0xF4, 0x90, 0x80, 0x80, 0x22],  // above U+10FFFF
        [0x22, 0xF5, 0x80, 0x80, 0x80, 0x22],  // invalid lead byte
        [0x22, 0xE2, 0x82, 0x22],  // truncated sequence
        [0x22, 0xC2, 0x22],  // truncated before the quote
        [0x22, 0xE2, 0x82],  // truncated at end of input
        [0x22, 0xF0, 0x9F, 0x98],  // truncated at end of input
        [0x22, 0xC3, 0x28, 0x22],  // bad continuation
        [0x22, 0xF0, 0x9F, 0x28, 0x80, 0x22],  // bad third byte
    ] as [[UInt8]])
    func rejectsInvalidUTF8(bytes: [UInt8]) {
        let error = #expect(throws: JSONError.self) { try JSONParser.parse(bytes) }
        #expect(error?.message == "invalid UTF-8 in string")
        #expect(error?.offset == 1)
    }

    @Test(arguments: [
        ([0x22, 0x7F, 0x22], "\u{7F}"),
        ([0x22, 0xC2, 0x80, 0x22], "\u{80}"),
        ([0x22, 0xDF, 0xBF, 0x22], "\u{7FF}"),
        ([0x22, 0xE0, 0xA0, 0x80, 0x22], "\u{800}"),
        ([0x22, 0xED, 0x9F, 0xBF, 0x22], "\u{D7FF}"),
        ([0x22, 0xEE, 0x80, 0x80, 0x22], "\u{E000}"),
        ([0x22, 0xEF, 0xBF, 0xBF, 0x22], "\u{FFFF}"),
        ([0x22, 0xF0, 0x90, 0x80, 0x80, 0x22], "\u{10000}"),
        ([0x22, 0xF4, 0x8F, 0xBF, 0xBF, 0x22], "\u{10FFFF}"),
    ] as [([UInt8], String)])
    func acceptsValidUTF8Boundaries(bytes: [UInt8], expected: String) throws {
        #expect(try JSONParser.parse(bytes) == .string(expected))
    }

    @Test func invalidUTF8OutsideStringIsRejected() {
        let error = #expect(throws: JSONError.self) { try JSONParser.parse([0x5B, 0xFF, 0x5D]) }
        #expect(error?.message == "unexpected byte 0xFF, expected a value")
    }

    @Test func deepNestingThrowsInsteadOfCrashing() {
        let deepArrays = [UInt8](repeating: UInt8(ascii: "["), count: 100_000)
        let error = #expect(throws: JSONError.self) { try JSONParser.parse(deepArrays) }
        #expect(error?.message == "nesting depth exceeds the limit of 100")
        #expect(error?.offset == 100)

        let deepObjects = String(repeating: "{\"a\":", count: 100_000)
        #expect(throws: JSONError.self) { try JSONParser.parse(deepObjects) }

        let balanced = String(repeating: "[", count: 100_000) + String(repeating: "]", count: 100_000)
        #expect(throws: JSONError.self) { try JSONParser.parse(balanced, maxDepth: 1_000) }
    }

    @Test func depthLimitIsInclusive() throws {
        let atLimit = String(repeating: "[", count: 100) + String(repeating: "]", count: 100)
        _ = try JSONParser.parse(atLimit)
        let overLimit = "[" + atLimit + "]"
        #expect(throws: JSONError.self) { try JSONParser.parse(overLimit) }
        let emptyOverLimit = String(repeating: "{\"k\":", count: 100) + "[]" + String(repeating: "}", count: 100)
        #expect(throws: JSONError.self) { try JSONParser.parse(emptyOverLimit) }
        _ = try JSONParser.parse("[[1]]", maxDepth: 2)
        #expect(throws: JSONError.self) { try JSONParser.parse("[[1]]", maxDepth: 1) }
        #expect(throws: JSONError.self) { try JSONParser.parse("[]", maxDepth: 0) }
        #expect(try JSONParser.parse("1", maxDepth: 0) == .number("1"))
    }

    @Test func largeObjectsDetectDuplicatesAndKeepOrder() throws {
        let keys = (0..<50).map { "k\(49 - $0)" }
        let members = keys.map { "\"\($0)\":\($0.dropFirst())" }
        let parsed = try JSONParser.parse("{" + members.joined(separator: ",") + "}")
        guard case .object(let object) = parsed else {
            Issue.record("expected an object")
            return
        }
        #expect(object.entries.map(\.key) == keys)
        #expect(object["k7"] == .number("7"))
        #expect(object["missing"] == nil)

        // Objects around the size where duplicate detection switches from linear search to a set.
        for count in [1, 2, 8, 9, 10, 50] {
            for duplicated in Set([0, count - 1]) {
                let withDuplicate = members.prefix(count) + ["\"\(keys[duplicated])\":0"]
                let error = #expect(throws: JSONError.self) {
                    try JSONParser.parse("{" + withDuplicate.joined(separator: ",") + "}")
                }
                #expect(error?.message == "duplicate key \"\(keys[duplicated])\" in object")
            }
        }
    }

    @Test func longDuplicateKeyIsTruncatedInMessage() {
        let key = String(repeating: "x", count: 1_000)
        let error = #expect(throws: JSONError.self) { try JSONParser.parse("{\"\(key)\":1,\"\(key)\":2}") }
        #expect(error?.message == "duplicate key \"\(String(repeating: "x", count: 64))\"… in object")
    }

    @Test func emptyBuffers() {
        #expect(throws: JSONError.self) { try JSONParser.parse([UInt8]()) }
        #expect(throws: JSONError.self) { try JSONParser.parse(UnsafeRawBufferPointer(start: nil, count: 0)) }
    }

    @Test func mutatedDocumentsNeverCrash() throws {
        let seed = #"{"a":[1,-2.5e+3,true,false,null,"x\u00e9\ud83d\ude00\n"],"b":{"c":{}},"d":[[],[{}]],"é":"😀"}"#
        let original = Array(seed.utf8)
        #expect(throws: Never.self) { try JSONParser.parse(original) }
        let interesting: [UInt8] = Array(#"{}[],:"\/-+.0123456789eEtfnu "#.utf8) + [0x00, 0x1F, 0x80, 0xBF, 0xC0, 0xED, 0xF4, 0xFF]
        var random = JSONTestRNG(seed: 8259)
        var accepted = 0
        for _ in 0..<5_000 {
            var bytes = original
            for _ in 0..<Int.random(in: 1...4, using: &random) {
                let position = Int.random(in: 0..<bytes.count, using: &random)
                switch Int.random(in: 0..<4, using: &random) {
                case 0: bytes[position] = interesting.randomElement(using: &random) ?? 0
                case 1: bytes.remove(at: position)
                case 2: bytes.insert(interesting.randomElement(using: &random) ?? 0, at: position)
                default: bytes.removeSubrange(position...)
                }
                if bytes.isEmpty { break }
            }
            do {
                _ = try JSONParser.parse(bytes)
                accepted += 1
            } catch let error as JSONError {
                #expect(error.offset.map { (0...bytes.count).contains($0) } == true)
            }
        }
        #expect(accepted > 0)
    }

    @Test func objectEqualityIsOrderSensitive() {
        let ab = JSONObject([(key: "a", value: .null), (key: "b", value: .bool(true))])
        let ba = JSONObject([(key: "b", value: .bool(true)), (key: "a", value: .null)])
        #expect(ab != ba)
        #expect(ab == JSONObject([(key: "a", value: .null), (key: "b", value: .bool(true))]))
        #expect(Set([JSONValue.object(ab), .object(ab), .object(ba)]).count == 2)
        #expect(JSONObject() == JSONObject([]))
    }
}
