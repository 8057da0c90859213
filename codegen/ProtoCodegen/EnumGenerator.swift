/// Generates an open proto3 enum: one case per distinct number, plus `unrecognized` for numbers the schema
/// does not know.
struct EnumGenerator {
    let descriptor: EnumDescriptor
    let swiftName: String
    /// The first name of each distinct number, in declaration order.
    let cases: [(name: String, protoName: String, number: Int32)]
    let aliases: [(name: String, target: String)]

    init(_ descriptor: EnumDescriptor, swiftName: String) throws {
        self.descriptor = descriptor
        self.swiftName = swiftName
        guard descriptor.values.first?.number == 0 else {
            throw CodegenError("\(descriptor.fullName): the first value of a proto3 enum must be 0")
        }
        var cases: [(String, String, Int32)] = []
        var aliases: [(String, String)] = []
        var names = Set<String>()
        for v in descriptor.values {
            let name = SwiftNaming.enumCaseName(v.name, enumName: descriptor.name)
            guard names.insert(name).inserted else {
                throw CodegenError("\(descriptor.fullName).\(v.name): Swift name \(name) is taken")
            }
            if let first = cases.first(where: { $0.2 == v.number }) {
                aliases.append((name, first.0))
            } else {
                cases.append((name, v.name, v.number))
            }
        }
        self.cases = cases
        self.aliases = aliases
    }

    func declaration(_ w: inout CodeWriter) throws {
        let shortName = String(swiftName.split(separator: ".").last!)
        let q = SwiftNaming.quoted
        w.block("public enum \(shortName): ProtoEnum") { w in
            for c in cases { w.line("case \(q(c.name))") }
            w.line("case unrecognized(Int32)")
            for a in aliases { w.line("public static let \(q(a.name)) = Self.\(q(a.target))") }
            w.line()
            w.block("public init(rawValue: Int32)") { w in
                w.block("switch rawValue") { w in
                    for c in cases { w.line("case \(c.number): self = .\(q(c.name))") }
                    w.line("default: self = .unrecognized(rawValue)")
                }
            }
            w.line()
            w.block("public var rawValue: Int32") { w in
                w.block("switch self") { w in
                    for c in cases { w.line("case .\(q(c.name)): \(c.number)") }
                    w.line("case .unrecognized(let value): value")
                }
            }
            w.line()
            w.line("public static let allCases: [Self] = [\(cases.map { "." + q($0.name) }.joined(separator: ", "))]")
            w.line()
            w.block("public var protoName: String?") { w in
                w.block("switch self") { w in
                    for c in cases { w.line("case .\(q(c.name)): \"\(c.protoName)\"") }
                    w.line("case .unrecognized: nil")
                }
            }
            w.line()
            w.block("public init?(protoName: String)") { w in
                w.block("switch protoName") { w in
                    for v in descriptor.values {
                        let target = cases.first { $0.number == v.number }!
                        w.line("case \"\(v.name)\": self = .\(q(target.name))")
                    }
                    w.line("default: return nil")
                }
            }
        }
    }
}
