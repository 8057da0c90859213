import CodecFuzzing
import Foundation
import Testing

/// Replays the fuzzer's regression corpus (inputs scripts/fuzz found interesting, plus hand-made malformed
/// ones) through the same check the fuzzer runs: every input must decode or throw, never crash.
@Suite("fuzz regression corpus")
struct FuzzCorpusTests {
    static let files: [URL] = {
        let dir = Bundle.module.resourceURL!.appendingPathComponent("FuzzCorpus")
        let names = (try? FileManager.default.contentsOfDirectory(atPath: dir.path)) ?? []
        return names.sorted().map { dir.appendingPathComponent($0) }
    }()

    @Test func corpusIsNotEmpty() {
        #expect(Self.files.count >= 20)
    }

    @Test func everyInputDecodesOrThrows() throws {
        for file in Self.files {
            let data = try Data(contentsOf: file)
            data.withUnsafeBytes { CodecFuzzing.check($0) }
        }
    }
}
