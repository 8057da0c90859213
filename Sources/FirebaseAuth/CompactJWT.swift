import ProtoRuntime

/// A JWS in compact form (`header.payload.signature`), split and decoded strictly (RFC 7515): exactly three
/// unpadded base64url segments, JSON objects without duplicate names. Nothing here trusts the content.
struct CompactJWT {
    let header: JSONObject
    let payload: JSONObject
    let signature: [UInt8]
    /// The exact received bytes the signature covers: `segment0.segment1`.
    let signingInput: ArraySlice<UInt8>

    /// Tokens larger than this are refused before any decoding (real ID tokens are about 1 KB).
    static let maximumSize = 16 << 10

    init(_ token: String) throws(TokenFormatError) {
        let bytes = Array(token.utf8)
        guard bytes.count <= Self.maximumSize else { throw .tooLarge }
        let dots = bytes.indices.filter { bytes[$0] == UInt8(ascii: ".") }
        guard dots.count == 2 else { throw .segments }
        let (first, second) = (dots[0], dots[1])
        header = try Self.object(bytes[..<first])
        payload = try Self.object(bytes[(first + 1)..<second])
        signature = try Self.decode(bytes[(second + 1)...])
        signingInput = bytes[..<second]
    }

    private static func decode(_ segment: ArraySlice<UInt8>) throws(TokenFormatError) -> [UInt8] {
        guard !segment.isEmpty else { throw .encoding }
        do {
            return try Base64.decodeStrict(String(decoding: segment, as: UTF8.self), alphabet: .urlSafe, padding: .forbidden)
        } catch {
            throw .encoding
        }
    }

    private static func object(_ segment: ArraySlice<UInt8>) throws(TokenFormatError) -> JSONObject {
        let json = try decode(segment)
        guard case .object(let object)? = try? JSONParser.parse(json, maxDepth: 16) else { throw .json }
        return object
    }
}

enum TokenFormatError: Error {
    case tooLarge, segments, encoding, json
}

extension JSONObject {
    func string(_ key: String) -> String? {
        if case .string(let s)? = self[key] { return s }
        return nil
    }

    func bool(_ key: String) -> Bool? {
        if case .bool(let b)? = self[key] { return b }
        return nil
    }

    /// A JSON number as whole seconds (NumericDate allows fractions; they are dropped).
    func seconds(_ key: String) -> Int64? {
        guard case .number(let text)? = self[key], let value = Double(text), value.isFinite,
              value >= -9.2e18, value <= 9.2e18 else { return nil }
        return Int64(value.rounded(.down))
    }

    func object(_ key: String) -> JSONObject? {
        if case .object(let o)? = self[key] { return o }
        return nil
    }
}
