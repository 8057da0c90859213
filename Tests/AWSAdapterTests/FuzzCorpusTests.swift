import AWSAdapters
import Foundation
import Testing

/// Replays the AWS reply fuzz corpus (hand-made replies of each protocol, plus whatever `scripts/fuzz aws`
/// finds) through the check the fuzzer runs: every input decodes or throws, never crashes.
@Suite("AWS reply fuzz corpus")
struct AWSFuzzCorpusTests {
    @Test func everyInputDecodesOrThrows() throws {
        let directory = Bundle.module.resourceURL!.appendingPathComponent("FuzzCorpus")
        let names = try FileManager.default.contentsOfDirectory(atPath: directory.path).sorted()
        #expect(names.count >= 10)
        for name in names {
            let data = try Data(contentsOf: directory.appendingPathComponent(name))
            data.withUnsafeBytes { AWSReplyFuzzing.check($0) }
        }
    }
}
