import Foundation
import SwiftProtobuf

/// Encode and decode throughput of swift-protobuf, for scripts/bench-codec: the counterpart of
/// Sources/codec-bench/CodecBench.swift, with the same messages, cases, timing and output.
///
///     swift-protobuf-bench [--seconds S] [--iterations N] [--filter name/op]
///
/// Output: one line per case, `name op ns_per_op msgs_per_s mb_per_s bytes`.
/// The message types come from Generated/, which scripts/bench-codec writes with protoc-gen-swift.
@main
struct SwiftProtobufBench {
    static func main() throws {
        var seconds = 2.0
        var args = CommandLine.arguments.dropFirst()
        while let arg = args.popFirst() {
            switch arg {
            case "--seconds": seconds = Double(args.popFirst() ?? "") ?? seconds
            case "--iterations": iterations = Int(args.popFirst() ?? "")
            case "--filter": filter = args.popFirst()
            default:
                print("usage: swift-protobuf-bench [--seconds S] [--iterations N] [--filter name/op]")
                exit(2)
            }
        }
        for sample in samples() {
            let bytes = try sample.encode()
            try run(sample.name, "encode", bytes: bytes.count, seconds: seconds) {
                _ = try sample.encode()
            }
            try run(sample.name, "decode", bytes: bytes.count, seconds: seconds) {
                try sample.decode(bytes)
            }
            try run(sample.name, "decode+encode", bytes: bytes.count, seconds: seconds) {
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

    /// The same two messages as CodecBench.samples(); both sides encode to and decode from `[UInt8]`.
    static func samples() -> [Sample] {
        let user = Gateway_User_V1_User.with {
            $0.id = "01HZX3KQ4V7T9ZB2C8M1N5P6RS"
            $0.email = "ada.lovelace@example.com"
            $0.displayName = "Ada Lovelace"
            $0.photoURL = "https://example.com/photos/ada.png"
            $0.firebaseUid = "h7Qx2LmT9bVdK3pR8sW1yZ4nA6cE"
            $0.isActive = true
            $0.version = 42
            $0.createdAt = .with { $0.seconds = 1_700_000_000; $0.nanos = 123_000_000 }
            $0.updatedAt = .with { $0.seconds = 1_700_086_400; $0.nanos = 456_000_000 }
        }
        let chunk = Gateway_File_V1_UploadFileRequest.with {
            $0.data = .chunk(Data((0..<65536).map { UInt8(truncatingIfNeeded: $0 &* 7) }))
        }
        return [
            Sample(name: "small-user", encode: { try user.serializedBytes() },
                   decode: { _ = try Gateway_User_V1_User(serializedBytes: $0) }),
            Sample(name: "large-64k-bytes", encode: { try chunk.serializedBytes() },
                   decode: { _ = try Gateway_File_V1_UploadFileRequest(serializedBytes: $0) }),
        ]
    }

    nonisolated(unsafe) static var iterations: Int?
    nonisolated(unsafe) static var filter: String?

    /// codec-bench's timing: ContinuousClock, batches of 64 until `seconds` have passed, or exactly
    /// `--iterations` runs (for instruction counts under callgrind).
    static func run(_ name: String, _ op: String, bytes: Int, seconds: Double, _ body: () throws -> Void) throws {
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
        print(name, op, format3(secs / Double(count) * 1e9), format3(perSecond),
              format3(perSecond * Double(bytes) / 1e6), bytes)
    }

    static func format3(_ v: Double) -> String {
        "\((v * 1000).rounded() / 1000)"
    }
}
