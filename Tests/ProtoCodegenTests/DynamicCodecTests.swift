import ConformanceProtos
import ProtoCodegen
import ProtoRuntime
import StandardProtos
import Testing

/// The codec for types known only at run time (what `gatewayctl call` uses), checked against the generated
/// code for the same schema: both must agree on every message, in binary and in JSON.
@Suite("dynamic codec")
struct DynamicCodecTests {
    typealias AllTypes = Conformance_V1_AllTypes

    static let codec: DynamicCodec = {
        let files = try! DescriptorSet(serialized: ConformanceProtosDescriptors.fileDescriptorSet).files
        return DynamicCodec(schema: try! DynamicSchema(files: files))
    }()

    static let samples: [AllTypes] = [
        AllTypes(),
        .with {
            $0.fInt32 = -150
            $0.fInt64 = .min
            $0.fUint32 = .max
            $0.fUint64 = .max
            $0.fSint32 = -1
            $0.fSint64 = .min
            $0.fFixed32 = 7
            $0.fFixed64 = 1 << 60
            $0.fSfixed32 = -7
            $0.fSfixed64 = -(1 << 60)
            $0.fFloat = 1.5
            $0.fDouble = -2.25e300
            $0.fBool = true
            $0.fString = "héllo \"world\"\n"
            $0.fBytes = [0, 1, 2, 0xFF]
            $0.fNested = .with { $0.a = 1; $0.b = "b"; $0.leaves = [.with { $0.data = [9]; $0.n = -3 }, .init()]; $0.color = .blue }
            $0.fColor = .green
            $0.fMode = .safe
            $0.fTimestamp = .with { $0.seconds = 1_700_000_000; $0.nanos = 5_000 }
            $0.fDuration = .with { $0.seconds = -3; $0.nanos = -500_000_000 }
            $0.fFieldMask = .with { $0.paths = ["f_int32", "f_nested.a"] }
            $0.fEmpty = .init()
            $0.withJsonName = 4
            $0.default = "d"
        },
        .with {
            $0.oInt32 = 0
            $0.oString = ""
            $0.oBytes = []
            $0.oNested = .init()
            $0.oColor = .red
            $0.oDouble = 0
            $0.choice = .oneofUint32(0)
        },
        .with {
            $0.rInt32 = [3, 270, -86942]
            $0.rSint64 = [-1, 1, .max]
            $0.rFloat = [0, -1.5, .infinity]
            $0.rDouble = [1e-300, -.infinity]
            $0.rBool = [true, false, true]
            $0.rString = ["", "a", "ü"]
            $0.rBytes = [[], [1]]
            $0.rNested = [.init(), .with { $0.a = 2 }]
            $0.rColor = [.red, .unrecognized(99)]
            $0.rTimestamp = [.with { $0.seconds = 1 }]
            $0.choice = .oneofNested(.with { $0.b = "in a oneof" })
        },
        .with {
            $0.mStringString = ["a": "1", "": ""]
            $0.mInt32Int32 = [0: 0, -5: 5]
            $0.mUint64Uint64 = [.max: 1]
            $0.mBoolBool = [true: false]
            $0.mInt32Double = [1: 0.5]
            $0.mStringBytes = ["k": [1, 2]]
            $0.mStringNested = ["n": .with { $0.leaves = [.init()] }]
            $0.mStringColor = ["c": .blue]
            $0.choice = .oneofColor(.green)
        },
    ]

    @Test(arguments: samples)
    func encodesWhatTheGeneratedCodeDecodes(message: AllTypes) throws {
        let json = try JSONParser.parse(message.jsonString())
        let bytes = try Self.codec.encode(json: json, as: AllTypes.protoMessageName)
        #expect(try AllTypes(serializedBytes: bytes) == message)
    }

    @Test(arguments: samples)
    func decodesWhatTheGeneratedCodeEncodes(message: AllTypes) throws {
        let json = try Self.codec.decode(message.serializedBytes(), as: AllTypes.protoMessageName)
        #expect(try AllTypes(jsonString: json) == message)
        #expect(try JSONParser.parse(json) == JSONParser.parse(message.jsonString()))
    }

    @Test func acceptsTheJSONFormsTheGeneratedCodeAccepts() throws {
        let text = #"{"f_int32": "12", "fNested": null, "fColor": 2, "rInt64": ["1", 2], "customJsonName": 3, "fFloat": "-Infinity"}"#
        let bytes = try Self.codec.encode(json: JSONParser.parse(text), as: AllTypes.protoMessageName)
        #expect(try AllTypes(serializedBytes: bytes) == AllTypes(jsonString: text))
    }

    @Test(arguments: [
        (#"{"nope": 1}"#, #"has no field "nope""#),
        (#"{"fInt32": "x"}"#, "fInt32"),
        (#"{"fColor": "PURPLE"}"#, "PURPLE"),
        (#"{"rInt32": 5}"#, "expected an array"),
        (#"{"oneofUint32": 1, "oneofString": "a"}"#, "same oneof"),
        (#"{"fTimestamp": "yesterday"}"#, ""),
        (#"[1]"#, "expected a JSON object"),
    ])
    func refusesWhatTheMessageCannotHold(json: String, mentioning: String) throws {
        let error = #expect(throws: (any Error).self) {
            try Self.codec.encode(json: JSONParser.parse(json), as: AllTypes.protoMessageName)
        }
        #expect("\(error!)".contains(mentioning))
    }

    /// Found by the fuzzer: a map key twice on the wire gave a JSON object with a duplicate key.
    @Test func aRepeatedMapKeyKeepsTheLastEntry() throws {
        // m_int32_int32: {0: 0}, then {0: 7}.
        let bytes: [UInt8] = [0xC2, 0x04, 0x00, 0xC2, 0x04, 0x04, 0x08, 0x00, 0x10, 0x07]
        #expect(try Self.codec.decode(bytes, as: AllTypes.protoMessageName) == #"{"mInt32Int32":{"0":7}}"#)
    }

    /// Found by the fuzzer: a map entry without its message value was written as null.
    @Test func aMapEntryWithoutItsValueHasTheDefault() throws {
        // m_string_nested: {"u": <no value>}.
        let bytes: [UInt8] = [0xB2, 0x05, 0x03, 0x0A, 0x01, 0x75]
        #expect(try Self.codec.decode(bytes, as: AllTypes.protoMessageName) == #"{"mStringNested":{"u":{}}}"#)
    }

    @Test func malformedBytesAreAnErrorNotACrash() {
        #expect(throws: ProtoDecodingError.self) {
            try Self.codec.decode([0x72, 0x05, 0x61], as: AllTypes.protoMessageName)
        }
    }

    @Test func recursiveTypesAreRefused() throws {
        let tree = DynamicSchema.Message(fullName: "t.Tree", fields: [
            .init(name: "children", jsonName: "children", number: 1, type: .message, label: .repeated, typeName: "t.Tree"),
        ])
        let holder = DynamicSchema.Message(fullName: "t.Holder", fields: [
            .init(name: "tree", jsonName: "tree", number: 1, type: .message, label: .optional, typeName: "t.Tree"),
        ])
        let schema = try DynamicSchema(messages: [tree, holder], enums: [])
        #expect(schema.isRecursive("t.Holder"))
        #expect(!schema.isRecursive("conformance.v1.AllTypes"))
        #expect(throws: ProtoJSONError.self) { try DynamicCodec(schema: schema).encode(json: .object(.init()), as: "t.Holder") }
    }

    @Test func typesTheSchemaLacksAreAnError() {
        let orphan = DynamicSchema.Message(fullName: "t.A", fields: [
            .init(name: "b", jsonName: "b", number: 1, type: .message, label: .optional, typeName: "t.Missing"),
        ])
        #expect(throws: ProtoJSONError.self) { try DynamicSchema(messages: [orphan], enums: []) }
    }

    /// proto2 presence (has_ flags and pointers), required fields and unpacked repeated scalars, on the
    /// reflection service's own schema (proto3) and a hand-made proto2 one.
    @Test func proto2PresenceRoundTrips() throws {
        let message = DynamicSchema.Message(
            fullName: "t.P2",
            fields: [
                .init(name: "req", jsonName: "req", number: 1, type: .int32, label: .required),
                .init(name: "opt", jsonName: "opt", number: 2, type: .int64, label: .optional),
                .init(name: "text", jsonName: "text", number: 3, type: .string, label: .optional),
                .init(name: "blob", jsonName: "blob", number: 4, type: .bytes, label: .optional),
                .init(name: "nums", jsonName: "nums", number: 5, type: .sint32, label: .repeated),
            ],
            isProto2: true
        )
        let codec = DynamicCodec(schema: try DynamicSchema(messages: [message], enums: []))
        let json = #"{"req":7,"opt":"0","text":"","blob":"","nums":[-1,2]}"#
        let bytes = try codec.encode(json: JSONParser.parse(json), as: "t.P2")
        // 08 07 | 10 00 | 1a 00 | 22 00 | 28 01 28 04: explicit zeros kept, repeated not packed.
        #expect(bytes == [0x08, 0x07, 0x10, 0x00, 0x1A, 0x00, 0x22, 0x00, 0x28, 0x01, 0x28, 0x04])
        #expect(try codec.decode(bytes, as: "t.P2") == json)
        #expect(try codec.decode([0x08, 0x00], as: "t.P2") == #"{"req":0}"#)
    }
}
