import ProtoRuntime
import Testing

@Suite("Base64")
struct Base64Tests {
    /// RFC 4648 §10 test vectors.
    @Test(arguments: [
        ("", ""),
        ("f", "Zg=="),
        ("fo", "Zm8="),
        ("foo", "Zm9v"),
        ("foob", "Zm9vYg=="),
        ("fooba", "Zm9vYmE="),
        ("foobar", "Zm9vYmFy"),
    ])
    func rfc4648Vectors(plain: String, encoded: String) throws {
        let bytes = Array(plain.utf8)
        #expect(Base64.encode(bytes) == encoded)
        #expect(Base64.encodeToBytes(bytes) == Array(encoded.utf8))
        #expect(try Base64.decode(encoded) == bytes)
        #expect(try Base64.decodeStrict(encoded, alphabet: .standard, padding: .required) == bytes)
        let unpadded = encoded.filter { $0 != "=" }
        #expect(Base64.encodeURLSafeUnpadded(bytes) == unpadded)
        #expect(try Base64.decode(unpadded) == bytes)
        #expect(try Base64.decodeStrict(unpadded) == bytes)
        #expect(try Base64.decodeStrict(encoded, alphabet: .urlSafe, padding: .optional) == bytes)
    }

    @Test func alphabets() throws {
        let bytes: [UInt8] = [0xFB, 0xFF, 0xBF]
        #expect(Base64.encode(bytes) == "+/+/")
        #expect(Base64.encodeURLSafeUnpadded(bytes) == "-_-_")
        #expect(Base64.encode([0xFB, 0xFF]) == "+/8=")
        #expect(Base64.encodeURLSafeUnpadded([0xFB, 0xFF]) == "-_8")
        for text in ["+/8=", "-_8=", "-_8", "+/8", "+_8", "-/8="] {
            #expect(try Base64.decode(text) == [0xFB, 0xFF], "\(text)")
        }
        #expect(try Base64.decode("+/+/"[...]) == bytes)
    }

    @Test func encodesNonContiguousCollections() {
        #expect(Base64.encode(Array("foobar".utf8).reversed()) == Base64.encode(Array("raboof".utf8)))
        #expect(Base64.encode((0..<3).map { UInt8($0) }.lazy.map { $0 }) == "AAEC")
        #expect(Base64.encodeURLSafeUnpadded(Array("fo".utf8)[...]) == "Zm8")
    }

    @Test(arguments: [
        ("Zg=", "invalid base64: incorrect padding"),
        ("Zg===", "invalid base64: incorrect padding"),
        ("Zm9v=", "invalid base64: incorrect padding"),
        ("Zm8==", "invalid base64: incorrect padding"),
        ("=", "invalid base64: incorrect padding"),
        ("====", "invalid base64: incorrect padding"),
        ("Z", "invalid base64: invalid length: 1 data characters cannot encode whole bytes"),
        ("Zm9vY", "invalid base64: invalid length: 5 data characters cannot encode whole bytes"),
        ("Z===", "invalid base64: invalid length: 1 data characters cannot encode whole bytes"),
        ("Zm 9v", "invalid base64: invalid character byte 32 at offset 2"),
        ("Zm9v\n", "invalid base64: invalid character byte 10 at offset 4"),
        (" Zm9v", "invalid base64: invalid character byte 32 at offset 0"),
        ("Zm*v", "invalid base64: invalid character '*' at offset 2"),
        ("=Zm9", "invalid base64: invalid character '=' at offset 0"),
        ("Zg==Zg==", "invalid base64: invalid character '=' at offset 2"),
        ("Zm9vé", "invalid base64: invalid character byte 195 at offset 4"),
    ])
    func lenientDecodeRejects(text: String, description: String) {
        let error = #expect(throws: Base64Error.self) { try Base64.decode(text) }
        #expect(error?.description == description)
    }

    @Test func lenientDecodeIgnoresNonZeroTrailingBits() throws {
        // Like Python's base64 (used by json_format): "YR==" decodes to "a".
        #expect(try Base64.decode("YR==") == [0x61])
        #expect(try Base64.decode("Zm9=") == [0x66, 0x6F])
    }

    @Test(arguments: [
        ("YR", Base64.Alphabet.urlSafe, Base64.Padding.forbidden, "non-zero unused bits in the final character"),
        ("Zm9", .urlSafe, .forbidden, "non-zero unused bits in the final character"),
        ("YR==", .standard, .required, "non-zero unused bits in the final character"),
        ("Zg==", .urlSafe, .forbidden, "padding is not allowed"),
        ("Zg", .standard, .required, "missing padding"),
        ("Zm8", .standard, .required, "missing padding"),
        ("Zg=", .standard, .optional, "incorrect padding"),
        ("+/8", .urlSafe, .forbidden, "invalid character '+' at offset 0"),
        ("-_8=", .standard, .required, "invalid character '-' at offset 0"),
        ("ab_/", .urlSafe, .optional, "invalid character '/' at offset 3"),
        ("eyJ.", .urlSafe, .forbidden, "invalid character '.' at offset 3"),
    ])
    func strictDecodeRejects(text: String, alphabet: Base64.Alphabet, padding: Base64.Padding, message: String) {
        let error = #expect(throws: Base64Error.self) {
            try Base64.decodeStrict(text, alphabet: alphabet, padding: padding)
        }
        #expect(error?.message == message)
    }

    @Test func strictDecodeAcceptsJWTSegments() throws {
        // The header of the JWT example in RFC 7519 §3.1.
        let header = try Base64.decodeStrict("eyJ0eXAiOiJKV1QiLA0KICJhbGciOiJIUzI1NiJ9")
        #expect(String(decoding: header, as: UTF8.self) == "{\"typ\":\"JWT\",\r\n \"alg\":\"HS256\"}")
        #expect(Base64.encodeURLSafeUnpadded(header) == "eyJ0eXAiOiJKV1QiLA0KICJhbGciOiJIUzI1NiJ9")
        #expect(try Base64.decodeStrict("", alphabet: .urlSafe, padding: .forbidden) == [])
    }

    @Test func randomBytesRoundTrip() throws {
        var random = JSONTestRNG(seed: 64)
        for length in 0..<200 {
            let bytes = (0..<length).map { _ in UInt8.random(in: 0...255, using: &random) }
            let standard = Base64.encode(bytes)
            #expect(standard.utf8.count == (length + 2) / 3 * 4)
            #expect(try Base64.decode(standard) == bytes)
            #expect(try Base64.decodeStrict(standard, alphabet: .standard, padding: .required) == bytes)
            let urlSafe = Base64.encodeURLSafeUnpadded(bytes)
            #expect(try Base64.decode(urlSafe) == bytes)
            #expect(try Base64.decodeStrict(urlSafe) == bytes)
        }
    }
}
