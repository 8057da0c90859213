/// Accumulates generated source with indentation.
struct CodeWriter {
    private(set) var text = ""
    private var indentation = ""

    mutating func line(_ s: String = "") {
        text += s.isEmpty ? "\n" : indentation + s + "\n"
    }

    /// Writes `header {`, the body one level deeper, then `}` (or `footer`). A header that already opens a
    /// closure (ends in ` in`) is written as it is.
    mutating func block(_ header: String, footer: String = "}", _ body: (inout CodeWriter) throws -> Void) rethrows {
        line(header.hasSuffix(" in") ? header : header + " {")
        indentation += "    "
        try body(&self)
        indentation.removeLast(4)
        line(footer)
    }
}
