import ConformanceProtos
import GatewayProtos
import ProtoRuntime
import StandardProtos
#if canImport(Glibc)
import Glibc
#endif

// The Swift side of the codec interop suite (Tests/interop/test_codec.py), driven over stdin/stdout.
//
// Requests (integers big-endian):
//   op 1  decode binary: u16 type-name length, type name, u32 payload length, payload
//   op 2  decode JSON:   same layout, payload is proto3 JSON (accepting .proto field names too)
//   op 3  corpus:        u32 seed, u32 count
// Responses to op 1 and 2: a result for the binary re-encoding, then one for the JSON encoding, each
// `u8 ok, u32 length, bytes` (bytes = the encoding, or the error text); a decode failure gives one result
// with ok = 0. Op 3 answers `count` pairs of results: a Swift-built message's binary and JSON encodings.

let registry: [String: any ProtoMessage.Type] = Dictionary(
    uniqueKeysWithValues: (ConformanceProtosDescriptors.messageTypes + StandardProtosDescriptors.messageTypes
        + GatewayProtosDescriptors.messageTypes).map { ($0.protoMessageName, $0) }
)

var input = FDReader(fd: 0)
var output = FDWriter(fd: 1)

@MainActor func result(_ body: () throws -> [UInt8]) {
    do {
        let bytes = try body()
        output.u8(1)
        output.lengthPrefixed(bytes)
    } catch {
        output.u8(0)
        output.lengthPrefixed(Array("\(error)".utf8))
    }
}

@MainActor func respond(to message: any ProtoMessage) {
    result { try message.serializedBytes() }
    result { try message.jsonUTF8Bytes() }
}

while let op = input.u8() {
    switch op {
    case 1, 2:
        guard let nameLength = input.u16(), let name = input.bytes(Int(nameLength)),
              let payloadLength = input.u32(), let payload = input.bytes(Int(payloadLength))
        else { exit(2) }
        let typeName = String(decoding: name, as: UTF8.self)
        guard let type = registry[typeName] else {
            output.u8(0)
            output.lengthPrefixed(Array("unknown message type \(typeName)".utf8))
            break
        }
        do {
            let message = op == 1 ? try type.init(serializedBytes: payload) : try type.init(jsonUTF8Bytes: payload)
            respond(to: message)
        } catch {
            output.u8(0)
            output.lengthPrefixed(Array("\(error)".utf8))
        }
    case 3:
        guard let seed = input.u32(), let count = input.u32() else { exit(2) }
        var corpus = Corpus(seed: UInt64(seed))
        for i in 0..<Int(count) {
            respond(to: corpus.allTypes(index: i))
        }
    default:
        exit(2)
    }
    output.flush()
}

struct FDReader {
    let fd: Int32

    mutating func bytes(_ count: Int) -> [UInt8]? {
        var out = [UInt8](repeating: 0, count: count)
        var done = 0
        while done < count {
            let n = out.withUnsafeMutableBytes { read(fd, $0.baseAddress! + done, count - done) }
            if n <= 0 { return nil }
            done += n
        }
        return out
    }

    mutating func u8() -> UInt8? { bytes(1)?[0] }
    mutating func u16() -> UInt16? { bytes(2).map { UInt16($0[0]) << 8 | UInt16($0[1]) } }
    mutating func u32() -> UInt32? { bytes(4).map { $0.reduce(0) { $0 << 8 | UInt32($1) } } }
}

struct FDWriter {
    let fd: Int32
    var buffer: [UInt8] = []

    mutating func u8(_ v: UInt8) { buffer.append(v) }
    mutating func lengthPrefixed(_ bytes: [UInt8]) {
        let n = UInt32(bytes.count)
        buffer += [UInt8(n >> 24), UInt8(n >> 16 & 0xff), UInt8(n >> 8 & 0xff), UInt8(n & 0xff)]
        buffer += bytes
    }

    mutating func flush() {
        var done = 0
        while done < buffer.count {
            let n = buffer.withUnsafeBytes { write(fd, $0.baseAddress! + done, buffer.count - done) }
            if n <= 0 { exit(3) }
            done += n
        }
        buffer.removeAll(keepingCapacity: true)
    }
}
