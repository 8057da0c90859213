import Foundation
import GatewayClient

/// One column of `--output table`.
struct Column<Item>: Sendable {
    let title: String
    let value: @Sendable (Item) -> String

    init(_ title: String, _ value: @escaping @Sendable (Item) -> String) {
        self.title = title
        self.value = value
    }
}

/// Writes results on stdout in the chosen format.
struct Printer: Sendable {
    let format: OutputFormat

    /// One message: compact JSON on one line (`json`), or indented JSON (`text`, `table`).
    func message(_ message: some ProtoMessage) throws {
        let json = try message.jsonString()
        write(format == .json ? json : Self.indented(json))
    }

    /// The items of a list: a table with `columns` (`table`), one JSON object per line (`json`), or indented
    /// JSON objects (`text`).
    func list<Item: ProtoMessage>(_ items: [Item], columns: [Column<Item>]) throws {
        switch format {
        case .table:
            write(Self.table(header: columns.map(\.title), rows: items.map { item in columns.map { $0.value(item) } }))
        case .json:
            for item in items { write(try item.jsonString()) }
        case .text:
            for item in items { write(Self.indented(try item.jsonString())) }
        }
    }

    /// A line of text as it is (for results that are not messages, like a count).
    func line(_ text: String) {
        write(text)
    }

    func write(_ text: String) {
        FileHandle.standardOutput.write(Data((text + "\n").utf8))
    }

    /// Columns padded to their widest cell (in characters), two spaces apart.
    static func table(header: [String], rows: [[String]]) -> String {
        let all = [header] + rows
        let widths = header.indices.map { column in all.map { $0[column].count }.max() ?? 0 }
        return all.map { row in
            zip(row, widths).enumerated().map { index, cell in
                index == row.count - 1 ? cell.0 : cell.0 + String(repeating: " ", count: cell.1 - cell.0.count)
            }.joined(separator: "  ")
        }.joined(separator: "\n")
    }

    /// Compact JSON re-indented by two spaces per level (strings left as they are).
    static func indented(_ json: String) -> String {
        var out = ""
        var depth = 0
        var inString = false
        var escaped = false
        let characters = Array(json)
        for (index, character) in characters.enumerated() {
            if inString {
                out.append(character)
                if escaped { escaped = false } else if character == "\\" { escaped = true } else if character == "\"" { inString = false }
                continue
            }
            switch character {
            case "\"":
                inString = true
                out.append(character)
            case "{", "[":
                let next = index + 1 < characters.count ? characters[index + 1] : " "
                out.append(character)
                if next == "}" || next == "]" { continue }
                depth += 1
                out += "\n" + String(repeating: "  ", count: depth)
            case "}", "]":
                let previous = index > 0 ? characters[index - 1] : " "
                if previous != "{" && previous != "[" {
                    depth -= 1
                    out += "\n" + String(repeating: "  ", count: depth)
                }
                out.append(character)
            case ",":
                out += ",\n" + String(repeating: "  ", count: depth)
            case ":":
                out += ": "
            default:
                out.append(character)
            }
        }
        return out
    }
}

extension Google_Protobuf_Timestamp {
    /// RFC 3339, as proto3 JSON writes it.
    var text: String { (try? ProtoJSONTime.formatTimestamp(seconds: seconds, nanos: nanos)) ?? "\(seconds)" }
}
