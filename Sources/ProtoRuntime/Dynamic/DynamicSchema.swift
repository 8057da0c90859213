internal import CProtobufC
#if canImport(Glibc)
import Glibc
#endif
import Synchronization

/// Message and enum types known only at run time — read from a server's reflection service — and the
/// protobuf-c descriptors built for them, so that messages of those types go through protobuf-c like generated
/// ones do (``DynamicCodec``). Swift still never parses the wire format itself.
public final class DynamicSchema: Sendable {
    /// `google.protobuf.FieldDescriptorProto.Type`.
    public enum FieldType: Int32, Sendable {
        case double = 1, float, int64, uint64, int32, fixed64, fixed32, bool, string, group, message, bytes, uint32, `enum`,
            sfixed32, sfixed64, sint32, sint64

        var isNumeric: Bool { ![.string, .bytes, .message, .group].contains(self) }
    }

    public enum Label: Sendable {
        case optional, required, repeated
    }

    public struct Field: Sendable {
        public var name: String
        public var jsonName: String
        public var number: Int32
        public var type: FieldType
        public var label: Label
        /// The message or enum type, fully qualified, for `.message` and `.enum` fields.
        public var typeName: String
        /// The oneof it belongs to (proto3 `optional` fields belong to a synthetic one).
        public var oneofIndex: Int?
        /// A proto3 `optional` field: explicit presence through its synthetic oneof.
        public var proto3Optional: Bool
        /// A repeated numeric field written packed.
        public var packed: Bool

        public init(
            name: String, jsonName: String, number: Int32, type: FieldType, label: Label, typeName: String = "",
            oneofIndex: Int? = nil, proto3Optional: Bool = false, packed: Bool = false
        ) {
            self.name = name
            self.jsonName = jsonName
            self.number = number
            self.type = type
            self.label = label
            self.typeName = typeName
            self.oneofIndex = oneofIndex
            self.proto3Optional = proto3Optional
            self.packed = packed
        }
    }

    public struct Message: Sendable {
        public var fullName: String
        public var fields: [Field]
        public var oneofNames: [String]
        /// A `map<K, V>` field's synthetic entry type (key 1, value 2).
        public var isMapEntry: Bool
        /// proto2 fields have explicit presence and may be required.
        public var isProto2: Bool

        public init(fullName: String, fields: [Field], oneofNames: [String] = [], isMapEntry: Bool = false, isProto2: Bool = false) {
            self.fullName = fullName
            self.fields = fields
            self.oneofNames = oneofNames
            self.isMapEntry = isMapEntry
            self.isProto2 = isProto2
        }

        func field(named key: String) -> Field? {
            fields.first { $0.jsonName == key } ?? fields.first { $0.name == key }
        }
    }

    public struct Enum: Sendable {
        public var fullName: String
        public var values: [(name: String, number: Int32)]

        public init(fullName: String, values: [(name: String, number: Int32)]) {
            self.fullName = fullName
            self.values = values
        }
    }

    public let messages: [String: Message]
    public let enums: [String: Enum]
    private let compiled: Mutex<[String: Compiled]>
    /// Every C allocation of the descriptors (as addresses), freed with the schema.
    private let allocations: Mutex<[UInt]>

    /// Checks that every field's type is known.
    public init(messages: [Message], enums: [Enum]) throws {
        self.messages = Dictionary(messages.map { ($0.fullName, $0) }, uniquingKeysWith: { first, _ in first })
        self.enums = Dictionary(enums.map { ($0.fullName, $0) }, uniquingKeysWith: { first, _ in first })
        compiled = Mutex([:])
        allocations = Mutex([])
        for message in messages {
            for field in message.fields {
                switch field.type {
                case .message where self.messages[field.typeName] == nil, .enum where self.enums[field.typeName] == nil:
                    throw ProtoJSONError(message: "\(message.fullName).\(field.name) has type \(field.typeName), which the schema lacks")
                case .group:
                    throw ProtoJSONError(message: "\(message.fullName).\(field.name) is a group, which is not supported")
                default:
                    continue
                }
            }
        }
    }

    /// Whether a message of this type can contain a message of a type it also contains (a tree, say).
    /// protobuf-c decodes nested messages by recursion without a depth limit, so the codec refuses such types,
    /// as the code generator does.
    public func isRecursive(_ name: String) -> Bool {
        // Depth-first, with an explicit stack: a server's schema may chain many types.
        var done: Set<String> = []
        var onPath: Set<String> = [name]
        var stack: [(name: String, next: Int)] = [(name, 0)]
        while let (current, next) = stack.last {
            let fields = messages[current]?.fields ?? []
            guard next < fields.count else {
                stack.removeLast()
                onPath.remove(current)
                done.insert(current)
                continue
            }
            stack[stack.count - 1].next += 1
            let field = fields[next]
            guard field.type == .message, !done.contains(field.typeName) else { continue }
            if onPath.contains(field.typeName) { return true }
            onPath.insert(field.typeName)
            stack.append((field.typeName, 0))
        }
        return false
    }

    deinit {
        allocations.withLock { for address in $0 { free(UnsafeMutableRawPointer(bitPattern: address)) } }
    }

    // MARK: C descriptors

    /// Where each field of a message lives in its C struct. The descriptor is written once, before it is
    /// published in `compiled`, and never again; the schema owns its memory.
    struct Compiled: @unchecked Sendable {
        let descriptor: UnsafeMutablePointer<ProtobufCMessageDescriptor>
        let size: Int
        /// By field number.
        let slots: [Int32: Slot]
    }

    struct Slot: Sendable {
        enum Presence: Sendable {
            /// proto3 implicit presence: written when not the default.
            case implicit
            /// A `has_` flag at this offset (proto2 optional scalars and bytes).
            case flag(Int)
            /// Present when the pointer is not null (proto2 optional strings and messages).
            case pointer
            /// The member of a oneof whose case (field number) is at this offset.
            case oneof(Int)
            /// Repeated: the element count is at this offset.
            case count(Int)
        }

        let offset: Int
        let presence: Presence
    }

    func compiled(_ name: String) -> Compiled {
        if let done = compiled.withLock({ $0[name] }) { return done }
        // Descriptors refer to each other (and to themselves): allocate all of them first, then fill them in.
        return compiled.withLock { table in
            if let done = table[name] { return done }
            var compiled = table
            defer { table = compiled }
            var pending: [String] = []
            var frontier = [name]
            var seen: Set<String> = [name]
            while let next = frontier.popLast() {
                if compiled[next] == nil { pending.append(next) }
                for field in messages[next]!.fields where field.type == .message && !seen.contains(field.typeName) {
                    seen.insert(field.typeName)
                    frontier.append(field.typeName)
                }
            }
            var descriptors: [String: UnsafeMutablePointer<ProtobufCMessageDescriptor>] = [:]
            for name in pending { descriptors[name] = allocate(ProtobufCMessageDescriptor.self, count: 1) }
            func descriptor(_ name: String) -> UnsafeMutablePointer<ProtobufCMessageDescriptor> {
                compiled[name]?.descriptor ?? descriptors[name]!
            }
            for name in pending {
                compiled[name] = build(messages[name]!, into: descriptors[name]!, descriptorOf: descriptor)
            }
            return compiled[name]!
        }
    }

    private func allocate<T>(_ type: T.Type, count: Int) -> UnsafeMutablePointer<T> {
        let size = max(1, MemoryLayout<T>.stride * count)
        guard let memory = calloc(1, size) else { fatalError("out of memory building protobuf-c descriptors") }
        allocations.withLock { $0.append(UInt(bitPattern: memory)) }
        return memory.bindMemory(to: T.self, capacity: count)
    }

    private func cString(_ text: String) -> UnsafePointer<CChar> {
        let bytes = Array(text.utf8CString)
        let out = allocate(CChar.self, count: bytes.count)
        out.initialize(from: bytes, count: bytes.count)
        return UnsafePointer(out)
    }

    /// Lays the message out (the protobuf-c header, then each field in a slot aligned to its size; the members
    /// of a oneof share one case word and one slot) and fills in its descriptor.
    private func build(
        _ message: Message, into descriptor: UnsafeMutablePointer<ProtobufCMessageDescriptor>,
        descriptorOf: (String) -> UnsafeMutablePointer<ProtobufCMessageDescriptor>
    ) -> Compiled {
        var size = MemoryLayout<ProtobufCMessage>.size
        func reserve(_ bytes: Int, alignment: Int) -> Int {
            size = (size + alignment - 1) / alignment * alignment
            defer { size += bytes }
            return size
        }
        var oneofSlots: [Int: (caseOffset: Int, offset: Int)] = [:]
        var slots: [Int32: Slot] = [:]
        for field in message.fields {
            let width = Self.width(of: field.type)
            if field.label == .repeated {
                let count = reserve(MemoryLayout<Int>.size, alignment: 8)
                let offset = reserve(8, alignment: 8)
                slots[field.number] = Slot(offset: offset, presence: .count(count))
            } else if let oneof = field.oneofIndex {
                let slot = oneofSlots[oneof] ?? (reserve(4, alignment: 4), reserve(16, alignment: 8))
                oneofSlots[oneof] = slot
                slots[field.number] = Slot(offset: slot.offset, presence: .oneof(slot.caseOffset))
            } else if message.isProto2 && field.label == .optional {
                if field.type == .string || field.type == .message {
                    slots[field.number] = Slot(offset: reserve(8, alignment: 8), presence: .pointer)
                } else {
                    let flag = reserve(4, alignment: 4)
                    slots[field.number] = Slot(offset: reserve(width, alignment: min(width, 8)), presence: .flag(flag))
                }
            } else {
                slots[field.number] = Slot(offset: reserve(width, alignment: min(width, 8)), presence: .implicit)
            }
        }
        size = (size + 7) / 8 * 8

        // protobuf-c wants the fields sorted by number, ranges of consecutive numbers, and the names sorted.
        let sorted = message.fields.sorted { $0.number < $1.number }
        let fields = allocate(ProtobufCFieldDescriptor.self, count: sorted.count)
        for (index, field) in sorted.enumerated() {
            let slot = slots[field.number]!
            var label = PROTOBUF_C_LABEL_NONE
            var quantifier = 0
            var flags: UInt32 = 0
            switch slot.presence {
            case .implicit:
                label = field.label == .required ? PROTOBUF_C_LABEL_REQUIRED : PROTOBUF_C_LABEL_NONE
            case .flag(let offset):
                label = PROTOBUF_C_LABEL_OPTIONAL
                quantifier = offset
            case .pointer:
                label = PROTOBUF_C_LABEL_OPTIONAL
            case .oneof(let offset):
                quantifier = offset
                flags |= UInt32(PROTOBUF_C_FIELD_FLAG_ONEOF.rawValue)
            case .count(let offset):
                label = PROTOBUF_C_LABEL_REPEATED
                quantifier = offset
                if field.packed && field.type.isNumeric { flags |= UInt32(PROTOBUF_C_FIELD_FLAG_PACKED.rawValue) }
            }
            (fields + index).initialize(to: ProtobufCFieldDescriptor(
                name: cString(field.name), id: UInt32(field.number), label: label, type: Self.cType(field.type),
                quantifier_offset: UInt32(quantifier), offset: UInt32(slot.offset),
                descriptor: field.type == .message ? UnsafeRawPointer(descriptorOf(field.typeName)) : nil,
                default_value: nil, flags: flags, reserved_flags: 0, reserved2: nil, reserved3: nil
            ))
        }
        var ranges: [ProtobufCIntRange] = []
        for (index, field) in sorted.enumerated() where index == 0 || sorted[index - 1].number + 1 != field.number {
            ranges.append(ProtobufCIntRange(start_value: field.number, orig_index: UInt32(index)))
        }
        let rangeCount = ranges.count
        ranges.append(ProtobufCIntRange(start_value: 0, orig_index: UInt32(sorted.count)))
        let rangeArray = allocate(ProtobufCIntRange.self, count: ranges.count)
        rangeArray.initialize(from: ranges, count: ranges.count)
        let byName = sorted.indices.sorted { Array(sorted[$0].name.utf8).lexicographicallyPrecedes(Array(sorted[$1].name.utf8)) }
        let names = allocate(UInt32.self, count: byName.count)
        names.initialize(from: byName.map(UInt32.init), count: byName.count)
        let shortName = String(message.fullName.split(separator: ".").last ?? "")
        let package = message.fullName.split(separator: ".").dropLast().joined(separator: ".")
        descriptor.initialize(to: ProtobufCMessageDescriptor(
            magic: UInt32(PROTOBUF_C__MESSAGE_DESCRIPTOR_MAGIC), name: cString(message.fullName), short_name: cString(shortName),
            c_name: cString(message.fullName.replacingDots()), package_name: cString(package), sizeof_message: size,
            n_fields: UInt32(sorted.count), fields: UnsafePointer(fields), fields_sorted_by_name: UnsafePointer(names),
            n_field_ranges: UInt32(rangeCount), field_ranges: UnsafePointer(rangeArray), message_init: nil,
            reserved1: nil, reserved2: nil, reserved3: nil
        ))
        return Compiled(descriptor: descriptor, size: size, slots: slots)
    }

    /// Bytes a singular value takes in the C struct.
    static func width(of type: FieldType) -> Int {
        switch type {
        case .int32, .uint32, .sint32, .sfixed32, .fixed32, .float, .enum, .bool: 4
        case .int64, .uint64, .sint64, .sfixed64, .fixed64, .double, .string, .message, .group: 8
        case .bytes: MemoryLayout<ProtobufCBinaryData>.size
        }
    }

    static func cType(_ type: FieldType) -> ProtobufCType {
        switch type {
        case .int32: PROTOBUF_C_TYPE_INT32
        case .sint32: PROTOBUF_C_TYPE_SINT32
        case .sfixed32: PROTOBUF_C_TYPE_SFIXED32
        case .int64: PROTOBUF_C_TYPE_INT64
        case .sint64: PROTOBUF_C_TYPE_SINT64
        case .sfixed64: PROTOBUF_C_TYPE_SFIXED64
        case .uint32: PROTOBUF_C_TYPE_UINT32
        case .fixed32: PROTOBUF_C_TYPE_FIXED32
        case .uint64: PROTOBUF_C_TYPE_UINT64
        case .fixed64: PROTOBUF_C_TYPE_FIXED64
        case .float: PROTOBUF_C_TYPE_FLOAT
        case .double: PROTOBUF_C_TYPE_DOUBLE
        case .bool: PROTOBUF_C_TYPE_BOOL
        case .enum: PROTOBUF_C_TYPE_ENUM
        case .string: PROTOBUF_C_TYPE_STRING
        case .bytes: PROTOBUF_C_TYPE_BYTES
        case .message, .group: PROTOBUF_C_TYPE_MESSAGE
        }
    }
}

extension String {
    fileprivate func replacingDots() -> String {
        String(map { $0 == "." ? "_" : $0 })
    }
}
