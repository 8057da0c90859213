import CodecFuzzing
#if canImport(Glibc)
import Glibc
#endif

// Built with `-sanitize=fuzzer` (scripts/fuzz), this is a libFuzzer target. Built normally, it replays the
// files given as arguments, e.g. a crash libFuzzer found.
#if FUZZING
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzOne(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    CodecFuzzing.check(UnsafeRawBufferPointer(start: data, count: size))
    return 0
}
#else
for path in CommandLine.arguments.dropFirst() {
    guard let f = fopen(path, "rb") else { continue }
    var bytes: [UInt8] = []
    var chunk = [UInt8](repeating: 0, count: 65536)
    while case let n = fread(&chunk, 1, chunk.count, f), n > 0 { bytes += chunk[0..<n] }
    fclose(f)
    bytes.withUnsafeBytes { CodecFuzzing.check($0) }
    print("ok \(path)")
}
#endif
