/// protoc-c 1.4.1's naming rules (protoc-c/c_helpers.cc), reproduced exactly so that generated Swift can name
/// the C structs, fields and functions that protoc-c emits.
public enum CNaming {
    /// `CamelToLower`: `GetUserRequest` → `get_user_request`.
    public static func camelToLower(_ name: String) -> String {
        var wasUpper = true
        var out = ""
        for c in name.unicodeScalars {
            let isUpper = c.isASCIIUpper
            if isUpper {
                if !wasUpper { out += "_" }
                out.unicodeScalars.append(c.asciiLowercased)
            } else {
                out.unicodeScalars.append(c)
            }
            wasUpper = isUpper
        }
        return out
    }

    /// `ToCamel`: `user_service` → `UserService` (only the letters after `_` change).
    public static func toCamel(_ name: String) -> String {
        var out = ""
        var nextUpper = true
        for c in name.unicodeScalars {
            if c == "_" {
                nextUpper = true
            } else if nextUpper {
                out.unicodeScalars.append(c.asciiUppercased)
                nextUpper = false
            } else {
                out.unicodeScalars.append(c)
            }
        }
        return out
    }

    /// `FullNameToC`: `gateway.user.v1.User` → `Gateway__User__V1__User`.
    public static func typeName(_ fullName: String) -> String {
        fullName.split(separator: ".").map { toCamel(String($0)) }.joined(separator: "__")
    }

    /// `FullNameToLower`: `gateway.user.v1.GetUserRequest` → `gateway__user__v1__get_user_request`.
    public static func functionPrefix(_ fullName: String) -> String {
        fullName.split(separator: ".").map { camelToLower(String($0)) }.joined(separator: "__")
    }

    /// `FieldName`: the lower-cased proto name, with `_` appended to C/C++ keywords.
    public static func fieldName(_ name: String) -> String {
        let lower = String(name.unicodeScalars.map { Character($0.asciiLowercased) })
        return keywords.contains(lower) ? lower + "_" : lower
    }

    /// The `<oneof>_case` member protoc-c declares for a oneof.
    public static func oneofCaseField(_ oneofName: String) -> String {
        camelToLower(oneofName) + "_case"
    }

    static let keywords: Set<String> = [
        "and", "and_eq", "asm", "auto", "bitand", "bitor", "bool", "break", "case",
        "catch", "char", "class", "compl", "const", "const_cast", "continue",
        "default", "delete", "do", "double", "dynamic_cast", "else", "enum",
        "explicit", "extern", "false", "float", "for", "friend", "goto", "if",
        "inline", "int", "long", "mutable", "namespace", "new", "not", "not_eq",
        "operator", "or", "or_eq", "private", "protected", "public", "register",
        "reinterpret_cast", "return", "short", "signed", "sizeof", "static",
        "static_cast", "struct", "switch", "template", "this", "throw", "true", "try",
        "typedef", "typeid", "typename", "union", "unsigned", "using", "virtual",
        "void", "volatile", "wchar_t", "while", "xor", "xor_eq",
    ]
}

extension Unicode.Scalar {
    /// C's `isupper` in the "C" locale.
    fileprivate var isASCIIUpper: Bool { (65...90).contains(value) }
    fileprivate var asciiLowercased: Unicode.Scalar {
        isASCIIUpper ? Unicode.Scalar(value + 32)! : self
    }
    fileprivate var asciiUppercased: Unicode.Scalar {
        (97...122).contains(value) ? Unicode.Scalar(value - 32)! : self
    }
}
