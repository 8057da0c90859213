/// Well-known types whose proto3 JSON form is not an object.
enum WellKnownJSON: String {
    case timestamp = "google.protobuf.Timestamp"
    case duration = "google.protobuf.Duration"
    case fieldMask = "google.protobuf.FieldMask"

    /// Well-known types with a special JSON form this generator does not implement; generating them would
    /// produce the wrong JSON, so it stops instead.
    static let unsupported: Set<String> = [
        "google.protobuf.Any", "google.protobuf.Struct", "google.protobuf.Value", "google.protobuf.ListValue",
        "google.protobuf.DoubleValue", "google.protobuf.FloatValue", "google.protobuf.Int64Value",
        "google.protobuf.UInt64Value", "google.protobuf.Int32Value", "google.protobuf.UInt32Value",
        "google.protobuf.BoolValue", "google.protobuf.StringValue", "google.protobuf.BytesValue",
    ]

    func write(_ w: inout CodeWriter) {
        let (format, parse): (String, [String]) = switch self {
        case .timestamp: (
            "ProtoJSONTime.formatTimestamp(seconds: seconds, nanos: nanos)",
            ["(self.seconds, self.nanos) = try ProtoJSONTime.parseTimestamp(text)"]
        )
        case .duration: (
            "ProtoJSONTime.formatDuration(seconds: seconds, nanos: nanos)",
            ["(self.seconds, self.nanos) = try ProtoJSONTime.parseDuration(text)"]
        )
        case .fieldMask: (
            "ProtoJSONTime.formatFieldMask(paths: paths)",
            ["self.paths = try ProtoJSONTime.parseFieldMask(text)"]
        )
        }
        w.block("public func _encodeJSON(to w: inout JSONWriter, options: JSONEncodingOptions) throws") { w in
            w.line("w.string(try \(format))")
        }
        w.line()
        w.block("public init(_json value: JSONValue, options: JSONDecodingOptions) throws") { w in
            w.line("self.init()")
            w.line("let text = try value.protoString(field: Self.protoMessageName)")
            for line in parse { w.line(line) }
        }
    }
}
