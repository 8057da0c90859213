internal import CSQLite

/// A value bound to a `?` parameter of a statement.
public enum SQLiteValue: Sendable, Hashable {
    case integer(Int64)
    case text(String)
    case blob([UInt8])
    case null

    /// 1 or 0.
    public static func bool(_ value: Bool) -> SQLiteValue { .integer(value ? 1 : 0) }
}

/// The current row of a query, readable only inside the closure it is passed to. Reads check the stored
/// type (no silent conversions, which SQLite would otherwise do) and throw `StorageError.invalidRecord`.
public struct SQLiteRow {
    let statement: OpaquePointer

    public func int64(_ column: Int) throws -> Int64 {
        try expect(SQLITE_INTEGER, "an integer", column)
        return sqlite3_column_int64(statement, Int32(column))
    }

    /// 1 is true and 0 is false; anything else is an invalid record.
    public func bool(_ column: Int) throws -> Bool {
        switch try int64(column) {
        case 0: return false
        case 1: return true
        case let other: throw StorageError(.invalidRecord, "column \(name(column)) holds \(other), expected 0 or 1")
        }
    }

    /// Text that must be valid UTF-8.
    public func text(_ column: Int) throws -> String {
        try expect(SQLITE_TEXT, "text", column)
        let count = Int(sqlite3_column_bytes(statement, Int32(column)))
        guard let bytes = sqlite3_column_text(statement, Int32(column)) else { return "" }
        guard let text = String(validating: UnsafeBufferPointer(start: bytes, count: count), as: UTF8.self) else {
            throw StorageError(.invalidRecord, "column \(name(column)) holds text that is not UTF-8")
        }
        return text
    }

    public func blob(_ column: Int) throws -> [UInt8] {
        try expect(SQLITE_BLOB, "a blob", column)
        let count = Int(sqlite3_column_bytes(statement, Int32(column)))
        guard let bytes = sqlite3_column_blob(statement, Int32(column)) else { return [] }  // zero-length
        return Array(UnsafeRawBufferPointer(start: bytes, count: count))
    }

    public func isNull(_ column: Int) -> Bool {
        sqlite3_column_type(statement, Int32(column)) == SQLITE_NULL
    }

    private func expect(_ type: Int32, _ what: String, _ column: Int) throws {
        let stored = sqlite3_column_type(statement, Int32(column))
        guard stored == type else {
            let names = [SQLITE_INTEGER: "an integer", SQLITE_FLOAT: "a float", SQLITE_TEXT: "text", SQLITE_BLOB: "a blob"]
            throw StorageError(.invalidRecord, "column \(name(column)) holds \(names[stored] ?? "NULL"), expected \(what)")
        }
    }

    private func name(_ column: Int) -> String {
        sqlite3_column_name(statement, Int32(column)).map { String(cString: $0) } ?? "\(column)"
    }
}
