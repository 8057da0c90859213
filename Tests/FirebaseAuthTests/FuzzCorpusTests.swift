import FirebaseAuth
import Foundation
import Testing

/// Replays the token fuzz corpus (hand-made token shapes, plus whatever `scripts/fuzz auth` finds) through
/// the check the fuzzer runs: every input is refused or accepted, never a crash.
@Suite("token fuzz corpus")
struct TokenFuzzCorpusTests {
    @Test func everyInputIsRefusedOrAcceptedWithoutACrash() throws {
        let directory = Bundle.module.resourceURL!.appendingPathComponent("FuzzCorpus")
        let names = try FileManager.default.contentsOfDirectory(atPath: directory.path).sorted()
        #expect(names.count >= 10)
        for name in names {
            let data = try Data(contentsOf: directory.appendingPathComponent(name))
            data.withUnsafeBytes { TokenFuzzing.check($0) }
        }
    }
}
