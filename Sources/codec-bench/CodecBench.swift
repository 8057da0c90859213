import GatewayProtos
import ProtoRuntime
import StandardProtos
#if canImport(Glibc)
import Glibc
#endif

/// Encode and decode throughput of generated messages (protobuf-c underneath), for scripts/bench-codec, which
/// prints these next to the same figures for Python protobuf (upb) and swift-protobuf.
///
///     codec-bench [--seconds S] [--iterations N]
///
/// With `--iterations` each case runs exactly N times (for valgrind's leak check); otherwise for S seconds
/// (default 2); `--filter small-user/decode` runs one case. Output: one line per case,
/// `name op ns_per_op msgs_per_s mb_per_s bytes`.
@main
struct CodecBench {
    static func main() throws {
        var seconds = 2.0
        var iterations: Int?
        var filter: String?
        var args = CommandLine.arguments.dropFirst()
        while let arg = args.popFirst() {
            switch arg {
            case "--seconds": seconds = Double(args.popFirst() ?? "") ?? seconds
            case "--iterations": iterations = Int(args.popFirst() ?? "")
            case "--filter": filter = args.popFirst()
            default:
                print("usage: codec-bench [--seconds S] [--iterations N] [--filter name/op]")
                exit(2)
            }
        }
        Self.filter = filter
        for sample in samples() {
            let bytes = try sample.encode()
            try run(sample.name, "encode", bytes: bytes.count, seconds: seconds, iterations: iterations) {
                _ = try sample.encode()
            }
            try run(sample.name, "decode", bytes: bytes.count, seconds: seconds, iterations: iterations) {
                try sample.decode(bytes)
            }
            try run(sample.name, "decode+encode", bytes: bytes.count, seconds: seconds, iterations: iterations) {
                try sample.decode(bytes)
                _ = try sample.encode()
            }
        }
    }

    struct Sample {
        let name: String
        let encode: () throws -> [UInt8]
        let decode: ([UInt8]) throws -> Void
    }

    /// The same two messages scripts/bench-codec builds for the other implementations.
    static func samples() -> [Sample] {
        let user = Gateway_User_V1_User.with {
            $0.id = "01HZX3KQ4V7T9ZB2C8M1N5P6RS"
            $0.email = "ada.lovelace@example.com"
            $0.displayName = "Ada Lovelace"
            $0.photoUrl = "https://example.com/photos/ada.png"
            $0.firebaseUid = "h7Qx2LmT9bVdK3pR8sW1yZ4nA6cE"
            $0.isActive = true
            $0.version = 42
            $0.createdAt = .with { $0.seconds = 1_700_000_000; $0.nanos = 123_000_000 }
            $0.updatedAt = .with { $0.seconds = 1_700_086_400; $0.nanos = 456_000_000 }
        }
        let chunk = Gateway_File_V1_UploadFileRequest.with {
            $0.data = .chunk((0..<65536).map { UInt8(truncatingIfNeeded: $0 &* 7) })
        }
        return [
            Sample(name: "small-user", encode: { try user.serializedBytes() },
                   decode: { _ = try Gateway_User_V1_User(serializedBytes: $0) }),
            Sample(name: "large-64k-bytes", encode: { try chunk.serializedBytes() },
                   decode: { _ = try Gateway_File_V1_UploadFileRequest(serializedBytes: $0) }),
        ]
    }

    nonisolated(unsafe) static var filter: String?

    static func run(
        _ name: String, _ op: String, bytes: Int, seconds: Double, iterations: Int?,
        _ body: () throws -> Void
    ) throws {
        if let filter, "\(name)/\(op)" != filter { return }
        let clock = ContinuousClock()
        var count = 0
        let start = clock.now
        if let iterations {
            for _ in 0..<iterations { try body() }
            count = iterations
        } else {
            let deadline = start + .milliseconds(Int(seconds * 1000))
            while clock.now < deadline {
                for _ in 0..<64 { try body() }
                count += 64
            }
        }
        let elapsed = start.duration(to: clock.now)
        let secs = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
        let perSecond = Double(count) / secs
        print(name, op, String(format3(secs / Double(count) * 1e9)), String(format3(perSecond)),
              String(format3(perSecond * Double(bytes) / 1e6)), bytes)
    }

    static func format3(_ v: Double) -> String {
        let scaled = (v * 1000).rounded() / 1000
        return "\(scaled)"
    }
}
