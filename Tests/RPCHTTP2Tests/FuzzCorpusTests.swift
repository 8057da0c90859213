import Foundation
import RPCHTTP2
import Testing

/// Replays the transport fuzz corpus (hand-made inputs for the deframer, the request header checks and a
/// server's HTTP/2 session, plus whatever `scripts/fuzz transport` finds) through the check the fuzzer runs.
@Suite("transport fuzz corpus")
struct TransportFuzzCorpusTests {
    @Test func everyInputIsRefusedOrAcceptedWithoutACrash() throws {
        let directory = Bundle.module.resourceURL!.appendingPathComponent("FuzzCorpus")
        let names = try FileManager.default.contentsOfDirectory(atPath: directory.path).sorted()
        #expect(names.count >= 10)
        for name in names {
            let data = try Data(contentsOf: directory.appendingPathComponent(name))
            data.withUnsafeBytes { TransportFuzzing.check($0) }
        }
    }
}
