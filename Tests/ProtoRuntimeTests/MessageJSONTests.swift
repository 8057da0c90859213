import ConformanceProtos
import ProtoRuntime
import StandardProtos
import Testing

@Suite("proto3 JSON mapping of generated messages")
struct MessageJSONTests {
    typealias AllTypes = Conformance_V1_AllTypes

    @Test func writesCanonicalForms() throws {
        let message = AllTypes.with {
            $0.fInt32 = -5
            $0.fInt64 = 1 << 60
            $0.fUint64 = .max
            $0.fBytes = [0xFB, 0xFF]
            $0.fColor = .green
            $0.rColor = [.red, .unrecognized(42)]
            $0.fDouble = .nan
            $0.oInt32 = 0
            $0.fTimestamp = .with { $0.seconds = 1; $0.nanos = 20_000_000 }
            $0.fDuration = .with { $0.seconds = -1; $0.nanos = -500_000_000 }
            $0.fFieldMask = .with { $0.paths = ["display_name", "user.photo_url"] }
            $0.mInt64Int64 = [2: 3]
            $0.withJsonName = 7
            $0.fieldName1 = 1
        }
        #expect(try message.jsonString() == """
            {"fInt32":-5,"fInt64":"1152921504606846976","fUint64":"18446744073709551615","fDouble":"NaN",\
            "fBytes":"+/8=","fColor":"COLOR_GREEN","fTimestamp":"1970-01-01T00:00:01.020Z","fDuration":"-1.500s",\
            "fFieldMask":"displayName,user.photoUrl","oInt32":0,"rColor":["COLOR_RED",42],"mInt64Int64":{"2":"3"},\
            "fieldName1":1,"customJsonName":7}
            """)
        #expect(try AllTypes(jsonString: try message.jsonString()).jsonString() == message.jsonString())
    }

    @Test func protoFieldNamesAreAcceptedAndCanBeWritten() throws {
        let message = try AllTypes(jsonString: #"{"f_int32": 3, "FieldName3": 4, "with_json_name": 5}"#)
        #expect(message.fInt32 == 3 && message.fieldName3 == 4 && message.withJsonName == 5)
        var options = JSONEncodingOptions()
        options.preserveProtoFieldNames = true
        #expect(try message.jsonString(options: options) == #"{"f_int32":3,"FieldName3":4,"with_json_name":5}"#)
    }

    @Test func unknownFieldsFailUnlessIgnored() throws {
        #expect(throws: ProtoJSONError.self) { try AllTypes(jsonString: #"{"nope": 1}"#) }
        #expect(throws: ProtoJSONError.self) { try AllTypes(jsonString: #"{"fColor": "COLOR_PURPLE"}"#) }
        var lenient = JSONDecodingOptions()
        lenient.ignoreUnknownFields = true
        let message = try AllTypes(jsonString: #"{"nope": 1, "fColor": "COLOR_PURPLE", "fInt32": 2}"#, options: lenient)
        #expect(message == AllTypes.with { $0.fInt32 = 2 })
    }

    @Test func nullMeansDefault() throws {
        let message = try AllTypes(jsonString: #"{"fInt32": null, "fNested": null, "rInt32": null, "mStringString": null}"#)
        #expect(message == AllTypes())
    }

    @Test(arguments: [
        #"[]"#, #"{"fInt32": "x"}"#, #"{"fInt32": 1.5}"#, #"{"fInt32": 2147483648}"#, #"{"fBool": "true"}"#,
        #"{"fTimestamp": "1970-01-01"}"#, #"{"fNested": []}"#, #"{"rInt32": [null]}"#,
        #"{"mInt32Int32": {"x": 1}}"#, #"{"fBytes": "!!"}"#,
    ])
    func invalidJSONThrows(text: String) {
        #expect(throws: (any Error).self) { try AllTypes(jsonString: text) }
    }
}
