/// Fields of a decoded message that its schema does not declare, in the order they arrived.
///
/// They are written back, after the known fields, when the message is encoded again (as upb and C++
/// protobuf do), so a message passes through a gateway built on an older schema unchanged.
public struct UnknownFields: Sendable, Hashable {
    public struct Field: Sendable, Hashable {
        public var number: UInt32
        /// The wire type: 0 varint, 1 64-bit, 2 length-delimited, 5 32-bit.
        public var wireType: UInt8
        /// The encoded value, as it followed the tag (a length-delimited value includes its length).
        public var value: [UInt8]

        public init(number: UInt32, wireType: UInt8, value: [UInt8]) {
            self.number = number
            self.wireType = wireType
            self.value = value
        }
    }

    public var fields: [Field]

    public init(_ fields: [Field] = []) {
        self.fields = fields
    }

    public var isEmpty: Bool { fields.isEmpty }
}
