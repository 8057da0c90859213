import AWSAdapters
import CodecFuzzing
import FirebaseAuth
import GatewayServer
import RPCHTTP2
#if canImport(Glibc)
import Glibc
#endif

// Built with `-sanitize=fuzzer` and `-DFUZZING` (scripts/fuzz), this is a libFuzzer target. Built normally, it
// replays the files given as arguments, e.g. a crash libFuzzer found. `FUZZ_TARGET` picks the decoders: `codec`
// (protobuf and JSON, the default), `aws` (AWS replies), `transport` (gRPC framing, request headers, HTTP/2) or
// `auth` (bearer tokens) or `inputs` (the configuration file, setting values, page tokens).
let target = getenv("FUZZ_TARGET").map { String(cString: $0) } ?? "codec"

func check(_ bytes: UnsafeRawBufferPointer) {
    switch target {
    case "aws": AWSReplyFuzzing.check(bytes)
    case "transport": TransportFuzzing.check(bytes)
    case "auth": TokenFuzzing.check(bytes)
    case "inputs": GatewayInputFuzzing.check(bytes)
    default: CodecFuzzing.check(bytes)
    }
}

#if FUZZING
func fuzzOne(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    check(UnsafeRawBufferPointer(start: data, count: size))
    return 0
}

// SwiftPM links executables with `main` aliased to `codec_fuzz_main`, which keeps libFuzzer's own `main` out;
// this entry point hands control to libFuzzer's driver instead.
@_silgen_name("LLVMFuzzerRunDriver")
func runFuzzerDriver(
    _ argc: UnsafeMutablePointer<CInt>,
    _ argv: UnsafeMutablePointer<UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>>,
    _ callback: @convention(c) (UnsafePointer<UInt8>?, Int) -> CInt
) -> CInt

@_cdecl("codec_fuzz_main")
func fuzzMain(_ argc: CInt, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>) -> CInt {
    var argc = argc
    var argv = argv
    return runFuzzerDriver(&argc, &argv, fuzzOne)
}
#else
@main
struct CodecFuzzReplay {
    static func main() {
        for path in CommandLine.arguments.dropFirst() {
            guard let f = fopen(path, "rb") else {
                print("cannot open \(path)")
                exit(1)
            }
            var bytes: [UInt8] = []
            var chunk = [UInt8](repeating: 0, count: 65536)
            while case let n = fread(&chunk, 1, chunk.count, f), n > 0 { bytes += chunk[0..<n] }
            fclose(f)
            bytes.withUnsafeBytes { check($0) }
            print("ok \(path)")
        }
    }
}
#endif
