@testable import ProtoCodegen
import Testing

@Suite("naming")
struct NamingTests {
    /// Expected values are what protoc-c 1.4.1 emits (see Sources/CConformanceProtos).
    @Test(arguments: [
        ("conformance.v1.AllTypes.MStringStringEntry", "Conformance__V1__AllTypes__MStringStringEntry",
         "conformance__v1__all_types__mstring_string_entry"),
        ("gateway.user.v1.GetUserByEmailRequest", "Gateway__User__V1__GetUserByEmailRequest",
         "gateway__user__v1__get_user_by_email_request"),
        ("grpc.reflection.v1alpha.ServerReflectionRequest", "Grpc__Reflection__V1alpha__ServerReflectionRequest",
         "grpc__reflection__v1alpha__server_reflection_request"),
        ("google.protobuf.FieldMask", "Google__Protobuf__FieldMask", "google__protobuf__field_mask"),
    ])
    func protocCNames(fullName: String, type: String, prefix: String) {
        #expect(CNaming.typeName(fullName) == type)
        #expect(CNaming.functionPrefix(fullName) == prefix)
    }

    @Test func protocCFieldNames() {
        #expect(CNaming.fieldName("FieldName3") == "fieldname3")
        #expect(CNaming.fieldName("default") == "default_")
        #expect(CNaming.oneofCaseField("_o_int32") == "_o_int32_case")
        #expect(CNaming.oneofCaseField("Choice") == "choice_case")
    }

    @Test(arguments: [
        ("f_int32", "fInt32"), ("FieldName3", "fieldName3"), ("field__name4", "fieldName4"),
        ("self", "self_"), ("unknown_fields", "unknownFields_"), ("default", "default"),
    ])
    func swiftPropertyNames(proto: String, swift: String) {
        #expect(SwiftNaming.propertyName(proto) == swift)
    }

    @Test func swiftKeywordsAreQuoted() {
        #expect(SwiftNaming.quoted("default") == "`default`")
        #expect(SwiftNaming.quoted("fInt32") == "fInt32")
    }

    @Test(arguments: [
        ("COLOR_RED", "Color", "red"), ("COLOR_UNSPECIFIED", "Color", "unspecified"),
        ("SERVICE_UNKNOWN", "ServingStatus", "serviceUnknown"), ("MODE_2X", "Mode", "mode2x"),
        ("UNRECOGNIZED", "Thing", "unrecognized_"),
    ])
    func enumCases(value: String, enumName: String, swift: String) {
        #expect(SwiftNaming.enumCaseName(value, enumName: enumName) == swift)
    }

    @Test func typePrefixes() {
        #expect(SwiftNaming.typePrefix(package: "gateway.user.v1", swiftPrefix: nil) == "Gateway_User_V1_")
        #expect(SwiftNaming.typePrefix(package: "grpc.health.v1", swiftPrefix: "") == "")
    }
}
