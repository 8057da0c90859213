/// libFuzzer entry for page tokens past their MAC (scripts/fuzz `inputs`): the bytes are taken as an opened
/// token's payload, through a sealer that checks nothing, and opened for every listing with and without a
/// scope. A page token reaches this decoder only with a valid MAC, so the MAC is what fuzzing cannot get past;
/// the sealer's own decoding (base64url, the MAC check) is fuzzed by `GatewayInputFuzzing` (GatewayServer).
public enum PageTokenFuzzing {
    private struct Unsealed: TokenSealer {
        let payload: [UInt8]
        func seal(_ payload: [UInt8]) -> String { "" }
        func open(_ token: String) -> [UInt8]? { payload }
    }

    public static func check(_ bytes: UnsafeRawBufferPointer) {
        let sealer = Unsealed(payload: Array(bytes))
        for listing in [PageToken.Listing.users, .sessions, .events, .files] {
            for scope in [[], Array("uid-1".utf8)] {
                _ = try? PageToken.open("", listing: listing, flags: bytes.first ?? 0, scope: scope, with: sealer)
            }
        }
    }
}
