import ConformanceProtos
import ProtoRuntime
import StandardProtos
import Testing

@Suite("binary codec through protobuf-c")
struct BinaryCodecTests {
    typealias AllTypes = Conformance_V1_AllTypes

    @Test func defaultMessageEncodesToNothing() throws {
        #expect(try AllTypes().serializedBytes() == [])
        #expect(try AllTypes(serializedBytes: [UInt8]()) == AllTypes())
    }

    /// Vectors from the protobuf encoding guide, and a few computed by hand.
    @Test(arguments: [
        (AllTypes.with { $0.fInt32 = 150 }, [0x08, 0x96, 0x01]),
        (AllTypes.with { $0.fInt32 = -1 }, [0x08] + [UInt8](repeating: 0xFF, count: 9) + [0x01]),
        (AllTypes.with { $0.fSint32 = -1 }, [0x28, 0x01]),
        (AllTypes.with { $0.fString = "testing" }, [0x72, 0x07] + Array("testing".utf8)),
        (AllTypes.with { $0.fFixed32 = 1 }, [0x3D, 0x01, 0x00, 0x00, 0x00]),
        (AllTypes.with { $0.rInt32 = [3, 270, 86942] }, [0x9A, 0x03, 0x06, 0x03, 0x8E, 0x02, 0x9E, 0xA7, 0x05]),
        (AllTypes.with { $0.oInt32 = 0 }, [0xF8, 0x01, 0x00]),
        (AllTypes.with { $0.fDouble = -0.0 }, [0x61, 0, 0, 0, 0, 0, 0, 0, 0x80]),
        (AllTypes.with { $0.choice = .oneofUint32(0) }, [0xF8, 0x06, 0x00]),
        (AllTypes.with { $0.mInt32Int32 = [0: 0] }, [0xC2, 0x04, 0x04, 0x08, 0x00, 0x10, 0x00]),
    ] as [(AllTypes, [UInt8])])
    func knownEncodings(message: AllTypes, bytes: [UInt8]) throws {
        #expect(try message.serializedBytes() == bytes)
        #expect(try AllTypes(serializedBytes: bytes) == message)
    }

    @Test func mapsEncodeInKeyOrder() throws {
        let a = AllTypes.with { $0.mStringString = ["b": "2", "a": "1", "é": "3", "": "0"] }
        let bytes = try a.serializedBytes()
        let keys = try AllTypes(serializedBytes: bytes).mStringString.keys.sorted()
        #expect(keys == ["", "a", "b", "é"])
        // Entries appear as "", a, b, é: each entry is `0a <len> <key>`, so the keys are in order in the bytes.
        let order = ["a", "b", "é"].map { key in bytes.firstRange(of: Array(key.utf8))!.lowerBound }
        #expect(order == order.sorted())
    }

    @Test func unknownFieldsAndEnumValuesSurvive() throws {
        // f_color = 77 (not in the enum), then field 1000 (varint 5) and field 1001 (bytes "hi"), unknown.
        let bytes: [UInt8] = [0x88, 0x01, 77, 0xC0, 0x3E, 0x05, 0xCA, 0x3E, 0x02, 0x68, 0x69]
        let message = try AllTypes(serializedBytes: bytes)
        #expect(message.fColor == .unrecognized(77))
        #expect(message.unknownFields.fields.map(\.number) == [1000, 1001])
        #expect(try message.serializedBytes() == bytes)
    }

    @Test func embeddedNULDecodesButCannotBeEncoded() throws {
        let message = try AllTypes(serializedBytes: [0x72, 0x03, 0x61, 0x00, 0x62] as [UInt8])
        #expect(message.fString == "a\u{0}b")
        #expect(throws: ProtoEncodingError.self) { try message.serializedBytes() }
    }

    @Test func invalidUTF8IsRejected() {
        #expect(throws: ProtoDecodingError(messageName: "conformance.v1.AllTypes", reason: .invalidUTF8(field: "f_string"))) {
            try AllTypes(serializedBytes: [0x72, 0x02, 0xC3, 0x28] as [UInt8])
        }
    }

    @Test(arguments: [
        [0x08, 0xFF, 0xFF],  // truncated varint
        [0x72, 0x05, 0x61],  // length beyond the buffer
        [0x7A, 0x80, 0xC2, 0xD7, 0x2F, 0x00],  // 100 MB declared length
        [0x0B, 0x0C],  // group
        [0x80, 0x00, 0x01],  // field number 0 behind a redundant tag byte (found by the fuzzer)
    ] as [[UInt8]])
    func malformedInputThrows(bytes: [UInt8]) {
        #expect(throws: ProtoDecodingError.self) { try AllTypes(serializedBytes: bytes) }
    }

    @Test func decodeMemoryIsBounded() throws {
        // 10 000 empty repeated messages: 30 000 bytes that unpack into 10 000 C structs.
        let wire = (0..<10_000).flatMap { _ in [0x92, 0x04, 0x00] as [UInt8] }
        #expect(try AllTypes(serializedBytes: wire).rNested.count == 10_000)
        var strict = ProtoDecodingOptions()
        strict.memoryLimitMultiple = 2
        #expect(throws: ProtoDecodingError(messageName: "conformance.v1.AllTypes", reason: .memoryLimitExceeded)) {
            try AllTypes(serializedBytes: wire, options: strict)
        }
    }

    @Test func serializeAppendsToABuffer() throws {
        var buffer: [UInt8] = [9, 9]
        let written = try AllTypes.with { $0.fInt32 = 150 }.serialize(into: &buffer)
        #expect(written == 3)
        #expect(buffer == [9, 9, 0x08, 0x96, 0x01])
        #expect(try AllTypes.with { $0.fInt32 = 150 }.serializedSize() == 3)
    }

    @Test func largeBytesRoundTrip() throws {
        let big = (0..<(1 << 20)).map { UInt8(truncatingIfNeeded: $0 &* 31) }
        let message = AllTypes.with { $0.fBytes = big; $0.rBytes = [[], big] }
        #expect(try AllTypes(serializedBytes: try message.serializedBytes()) == message)
    }

    @Test func enumAliasesAndNames() {
        #expect(Conformance_V1_Aliased.uno == .one)
        #expect(Conformance_V1_Aliased(protoName: "ALIASED_UNO") == .one)
        #expect(Conformance_V1_Color.negative.rawValue == -1)
        #expect(Conformance_V1_Color(rawValue: 5).protoName == nil)
        #expect(Conformance_V1_Color.allCases.count == 6)
    }
}

@Suite("embedded descriptors")
struct EmbeddedDescriptorTests {
    @Test func filesAndSetAreEmbedded() throws {
        let files = StandardProtosDescriptors.files
        #expect(files.map(\.name).contains("grpc/health/v1/health.proto"))
        let health = try #require(files.first { $0.name == "grpc/health/v1/health.proto" })
        #expect(health.symbols.contains("grpc.health.v1.Health.Watch"))
        #expect(health.symbols.contains("grpc.health.v1.HealthCheckResponse.ServingStatus"))
        // A FileDescriptorSet is `repeated FileDescriptorProto file = 1`: each file appears as field 1.
        let set = StandardProtosDescriptors.fileDescriptorSet
        #expect(set.first == 0x0A)
        #expect(set.count > files.map(\.serialized.count).reduce(0, +))
    }
}
