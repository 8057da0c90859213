/// The XML that S3, SNS and STS answer with, read into a small tree: elements by local name (namespace
/// prefixes dropped), their text with the five predefined entities and character references resolved,
/// comments, processing instructions and CDATA handled. No DTDs (a `<!DOCTYPE` is refused, so no entity
/// expansion), at most `maximumDepth` levels, no recursion: a hostile or broken reply is an error, never a
/// crash or a blow-up.
struct XMLDocument: Sendable {
    struct Element: Sendable {
        var name: String
        var text: String
        var children: [Element]

        /// The first child named `name`.
        func child(_ name: String) -> Element? { children.first { $0.name == name } }

        /// Every child named `name`.
        func children(_ name: String) -> [Element] { children.filter { $0.name == name } }

        /// The text of the element at `path` below this one (`child(path[0])?.child(path[1])…`).
        func text(at path: String...) -> String? {
            var element = self
            for name in path {
                guard let next = element.child(name) else { return nil }
                element = next
            }
            return element.text
        }
    }

    struct ParseError: Error, Sendable, CustomStringConvertible {
        var message: String
        var offset: Int
        var description: String { "malformed XML at byte \(offset): \(message)" }
    }

    let root: Element
    static let maximumDepth = 64

    init(parsing bytes: [UInt8]) throws {
        var parser = Parser(bytes: bytes)
        root = try parser.document()
    }

    private struct Parser {
        let bytes: [UInt8]
        var i = 0

        init(bytes: [UInt8]) { self.bytes = bytes }

        func fail(_ message: String) -> ParseError { ParseError(message: message, offset: i) }

        mutating func document() throws -> Element {
            var stack: [Element] = []
            var root: Element?
            while i < bytes.count {
                if bytes[i] != UInt8(ascii: "<") {
                    let text = try self.text()
                    if var top = stack.popLast() {
                        top.text += text
                        stack.append(top)
                    } else if !text.allSatisfy({ $0 == " " || $0 == "\n" || $0 == "\r" || $0 == "\t" }) {
                        throw fail("text outside the root element")
                    }
                    continue
                }
                if starts(with: "<?") {
                    try skip(past: "?>")
                } else if starts(with: "<!--") {
                    try skip(past: "-->")
                } else if starts(with: "<![CDATA[") {
                    i += 9
                    let start = i
                    try skip(past: "]]>")
                    guard var top = stack.popLast() else { throw fail("CDATA outside an element") }
                    top.text += String(decoding: bytes[start..<i - 3], as: UTF8.self)
                    stack.append(top)
                } else if starts(with: "<!") {
                    throw fail("declarations (DOCTYPE) are not accepted")
                } else if starts(with: "</") {
                    i += 2
                    let name = try self.name()
                    skipSpace()
                    try expect(">")
                    guard let element = stack.popLast(), element.name == name else { throw fail("unexpected </\(name)>") }
                    if var parent = stack.popLast() {
                        parent.children.append(element)
                        stack.append(parent)
                    } else {
                        guard root == nil else { throw fail("more than one root element") }
                        root = element
                    }
                } else {
                    i += 1
                    let name = try self.name()
                    var selfClosing = false
                    while true {
                        skipSpace()
                        guard i < bytes.count else { throw fail("unterminated tag") }
                        if bytes[i] == UInt8(ascii: ">") {
                            i += 1
                            break
                        }
                        if starts(with: "/>") {
                            i += 2
                            selfClosing = true
                            break
                        }
                        _ = try self.name()
                        skipSpace()
                        try expect("=")
                        skipSpace()
                        guard i < bytes.count, bytes[i] == UInt8(ascii: "\"") || bytes[i] == UInt8(ascii: "'") else {
                            throw fail("attribute value without quotes")
                        }
                        let quote = bytes[i]
                        i += 1
                        while i < bytes.count, bytes[i] != quote { i += 1 }
                        guard i < bytes.count else { throw fail("unterminated attribute value") }
                        i += 1
                    }
                    guard root == nil else { throw fail("content after the root element") }
                    let element = Element(name: name, text: "", children: [])
                    if selfClosing {
                        if var parent = stack.popLast() {
                            parent.children.append(element)
                            stack.append(parent)
                        } else {
                            root = element
                        }
                    } else {
                        guard stack.count < XMLDocument.maximumDepth else { throw fail("nested deeper than \(XMLDocument.maximumDepth)") }
                        stack.append(element)
                    }
                }
            }
            guard stack.isEmpty, let root else { throw fail(stack.isEmpty ? "no root element" : "unclosed <\(stack.last!.name)>") }
            return root
        }

        func starts(with prefix: StaticString) -> Bool {
            let count = prefix.utf8CodeUnitCount
            guard bytes.count - i >= count else { return false }
            return prefix.withUTF8Buffer { p in (0..<count).allSatisfy { bytes[i + $0] == p[$0] } }
        }

        mutating func skip(past terminator: StaticString) throws {
            while i < bytes.count {
                if starts(with: terminator) {
                    i += terminator.utf8CodeUnitCount
                    return
                }
                i += 1
            }
            throw fail("missing \(terminator)")
        }

        mutating func expect(_ c: Unicode.Scalar) throws {
            guard i < bytes.count, bytes[i] == UInt8(ascii: c) else { throw fail("expected \(c)") }
            i += 1
        }

        mutating func skipSpace() {
            while i < bytes.count, [0x20, 0x0A, 0x0D, 0x09].contains(bytes[i]) { i += 1 }
        }

        /// A tag or attribute name; the local part of a prefixed one.
        mutating func name() throws -> String {
            let start = i
            while i < bytes.count, !([0x20, 0x0A, 0x0D, 0x09, UInt8(ascii: ">"), UInt8(ascii: "/"), UInt8(ascii: "=")].contains(bytes[i])) {
                guard bytes[i] != UInt8(ascii: "<") else { throw fail("< in a name") }
                i += 1
            }
            guard i > start else { throw fail("expected a name") }
            let full = bytes[start..<i]
            let local = full.lastIndex(of: UInt8(ascii: ":")).map { full[($0 + 1)...] } ?? full
            return String(decoding: local, as: UTF8.self)
        }

        /// Character data up to the next `<`, entities resolved.
        mutating func text() throws -> String {
            var out: [UInt8] = []
            while i < bytes.count, bytes[i] != UInt8(ascii: "<") {
                guard bytes[i] == UInt8(ascii: "&") else {
                    out.append(bytes[i])
                    i += 1
                    continue
                }
                guard let end = bytes[i...].prefix(12).firstIndex(of: UInt8(ascii: ";")) else { throw fail("unterminated entity") }
                let entity = String(decoding: bytes[(i + 1)..<end], as: UTF8.self)
                switch entity {
                case "amp": out.append(UInt8(ascii: "&"))
                case "lt": out.append(UInt8(ascii: "<"))
                case "gt": out.append(UInt8(ascii: ">"))
                case "quot": out.append(UInt8(ascii: "\""))
                case "apos": out.append(UInt8(ascii: "'"))
                default:
                    let scalar: UInt32?
                    if entity.hasPrefix("#x") {
                        scalar = UInt32(entity.dropFirst(2), radix: 16)
                    } else if entity.hasPrefix("#") {
                        scalar = UInt32(entity.dropFirst(), radix: 10)
                    } else {
                        scalar = nil
                    }
                    guard let scalar, let character = Unicode.Scalar(scalar) else { throw fail("unknown entity &\(entity);") }
                    out += Array(String(Character(character)).utf8)
                }
                i = end + 1
            }
            return String(decoding: out, as: UTF8.self)
        }
    }
}
