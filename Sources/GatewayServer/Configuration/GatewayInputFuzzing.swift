import Foundation
import GatewayApplication

/// libFuzzer entry for the gateway's other untrusted or hand-written inputs (scripts/fuzz `inputs`): the
/// bytes as a JSON configuration file (parsed, resolved and validated as at start), as a page token (the
/// sealer's base64url and MAC check, then the token's payload decoder), and, after their first byte, as the
/// value of the setting that byte picks, given as a flag (one setting per input keeps an execution cheap).
/// None may crash; refusals are expected.
public enum GatewayInputFuzzing {
    private static let sealer = HMACTokenSealer(key: Array(repeating: 7, count: 32))

    public static func check(_ bytes: UnsafeRawBufferPointer) {
        if let file = try? ConfigurationFile(path: "fuzz.json", json: Data(bytes)),
            let resolved = try? ConfigurationSources(file: file).resolve()
        {
            try? resolved.settings.validateForServing()
        }
        let text = String(decoding: bytes, as: UTF8.self)
        _ = sealer.open(text)
        PageTokenFuzzing.check(bytes)
        guard let first = bytes.first else { return }
        let setting = Setting.gateway[Int(first) % Setting.gateway.count]
        _ = try? ConfigurationSources(flags: [setting.flag: String(decoding: bytes.dropFirst(), as: UTF8.self)]).resolve()
    }
}
