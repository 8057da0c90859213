/// Swift names for protobuf elements, following swift-protobuf's conventions where they are unambiguous.
enum SwiftNaming {
    /// `gateway.user.v1` → `Gateway_User_V1_`; `option swift_prefix` wins when set.
    static func typePrefix(package: String, swiftPrefix: String?) -> String {
        if let swiftPrefix { return swiftPrefix }
        guard !package.isEmpty else { return "" }
        return package.split(separator: ".").map { upperCamel(String($0)) }.joined(separator: "_") + "_"
    }

    /// `foo_bar` → `FooBar`; existing capitals are kept.
    static func upperCamel(_ name: String) -> String {
        let camel = lowerCamel(name)
        return camel.prefix(1).uppercased() + camel.dropFirst()
    }

    /// `foo_bar` → `fooBar`, `FooBar` → `fooBar`, `_foo` → `foo`.
    static func lowerCamel(_ name: String) -> String {
        var out = ""
        var upperNext = false
        for c in name {
            if c == "_" {
                upperNext = !out.isEmpty
            } else if upperNext {
                out += c.uppercased()
                upperNext = false
            } else {
                out.append(c)
            }
        }
        return out.prefix(1).lowercased() + out.dropFirst()
    }

    /// A type name nested in a message; names that would clash with Swift's own members get a suffix.
    static func nestedTypeName(_ name: String, suffix: String) -> String {
        reservedNestedTypeNames.contains(name) ? name + suffix : name
    }

    /// A stored property for a field or oneof.
    static func propertyName(_ protoName: String) -> String {
        let name = lowerCamel(protoName)
        if reservedPropertyNames.contains(name) { return name + "_" }
        return name.first?.isNumber == true ? "_" + name : name
    }

    /// `COLOR_RED` in enum `Color` → `red`; the enum's name prefix is dropped when something usable is left.
    static func enumCaseName(_ valueName: String, enumName: String) -> String {
        let prefix = screamingSnake(enumName) + "_"
        var name = valueName
        if valueName.uppercased().hasPrefix(prefix) {
            let rest = String(valueName.dropFirst(prefix.count))
            if let first = rest.first, first.isLetter { name = rest }
        }
        let camel = lowerCamel(name.lowercased())
        if camel == "unrecognized" || camel == "allCases" || camel == "protoName" || camel == "rawValue" {
            return camel + "_"
        }
        return camel.first?.isNumber == true ? "_" + camel : camel
    }

    /// `UserStatus` → `USER_STATUS`.
    static func screamingSnake(_ name: String) -> String {
        var out = ""
        var previousLower = false
        for c in name {
            if c.isUppercase && previousLower { out += "_" }
            out += c.uppercased()
            previousLower = c.isLowercase || c.isNumber
        }
        return out
    }

    /// Backticks for a declaration or reference when the name is a Swift keyword.
    static func quoted(_ name: String) -> String {
        keywords.contains(name) ? "`\(name)`" : name
    }

    static let reservedNestedTypeNames: Set<String> = ["Type", "Protocol", "Self", "Any", "OneOf", "Unrecognized"]

    static let reservedPropertyNames: Set<String> = [
        "unknownFields", "hashValue", "description", "debugDescription", "self", "Type", "Protocol",
        "protoMessageName", "jsonString", "serializedBytes", "serializedSize", "with",
    ]

    static let keywords: Set<String> = [
        "associatedtype", "class", "deinit", "enum", "extension", "fileprivate", "func", "import", "init",
        "inout", "internal", "let", "open", "operator", "private", "precedencegroup", "protocol", "public",
        "rethrows", "static", "struct", "subscript", "typealias", "var", "break", "case", "catch", "continue",
        "default", "defer", "do", "else", "fallthrough", "for", "guard", "if", "in", "repeat", "return",
        "throw", "switch", "where", "while", "Any", "as", "await", "false", "is", "nil", "self", "Self",
        "super", "throws", "true", "try", "some", "any", "consume", "copy", "borrowing", "consuming",
    ]
}
