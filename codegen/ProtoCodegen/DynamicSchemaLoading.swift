public import ProtoRuntime

extension DynamicSchema {
    /// The messages and enums of `files` (a file and everything it imports), for encoding and decoding
    /// messages of types known only at run time, such as those a server describes through reflection.
    /// Editions files are refused: protoc-c 1.4 and protoc 3.21, which these descriptors come from, predate
    /// editions.
    public convenience init(files: [FileDescriptor]) throws {
        var messages: [DynamicSchema.Message] = []
        var enums: [DynamicSchema.Enum] = []
        for file in files {
            guard file.syntax == "proto2" || file.syntax == "proto3" else {
                throw CodegenError("\(file.name) uses syntax \"\(file.syntax)\", which is not supported")
            }
            let proto2 = file.syntax == "proto2"
            var pending = file.messages
            enums += file.enums.map { Enum(fullName: $0.fullName, values: $0.values) }
            while let message = pending.popLast() {
                pending += message.messages
                enums += message.enums.map { Enum(fullName: $0.fullName, values: $0.values) }
                messages.append(Message(
                    fullName: message.fullName,
                    fields: message.fields.map { Self.field($0, proto2: proto2) },
                    oneofNames: message.oneofs.map(\.name),
                    isMapEntry: message.isMapEntry,
                    isProto2: proto2
                ))
            }
        }
        try self.init(messages: messages, enums: enums)
    }

    private static func field(_ field: FieldDescriptor, proto2: Bool) -> Field {
        let label: Label = switch field.label {
        case .optional: .optional
        case .required: .required
        case .repeated: .repeated
        }
        return Field(
            name: field.name, jsonName: field.jsonName, number: field.number,
            type: FieldType(rawValue: field.kind.rawValue)!, label: label,
            typeName: field.typeName.map { $0.hasPrefix(".") ? String($0.dropFirst()) : $0 } ?? "",
            oneofIndex: field.oneofIndex, proto3Optional: field.isProto3Optional,
            // proto3 packs repeated scalars unless told not to; proto2 only when told to.
            packed: field.packed ?? !proto2
        )
    }
}
