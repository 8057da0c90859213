import Foundation
import GatewayServer
import Testing

/// Replays the `inputs` fuzz corpus (configuration files, setting values, page tokens, plus whatever
/// `scripts/fuzz inputs` finds) through the check the fuzzer runs: refused or accepted, never a crash.
@Suite("gateway inputs fuzz corpus")
struct GatewayInputFuzzCorpusTests {
    @Test func everyInputIsRefusedOrAcceptedWithoutACrash() throws {
        let directory = Bundle.module.resourceURL!.appendingPathComponent("FuzzCorpus")
        let names = try FileManager.default.contentsOfDirectory(atPath: directory.path).sorted()
        #expect(names.count >= 15)
        for name in names {
            let data = try Data(contentsOf: directory.appendingPathComponent(name))
            data.withUnsafeBytes { GatewayInputFuzzing.check($0) }
        }
    }
}
