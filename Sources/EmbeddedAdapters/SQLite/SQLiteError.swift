internal import CSQLite

/// What SQLite reported when a call failed: its extended result code and message. Every SQLite result code
/// becomes this error here, in `init(code:connection:)`, and nowhere else.
public struct SQLiteError: Error, Sendable, Hashable, CustomStringConvertible {
    /// The extended result code, e.g. 2067 (`SQLITE_CONSTRAINT_UNIQUE`); its low byte is the primary code.
    public var extendedCode: Int32
    /// SQLite's message, e.g. "UNIQUE constraint failed: users.email_canonical".
    public var message: String

    public init(extendedCode: Int32, message: String) {
        self.extendedCode = extendedCode
        self.message = message
    }

    /// The primary result code, e.g. 19 (`SQLITE_CONSTRAINT`).
    public var primaryCode: Int32 { extendedCode & 0xFF }

    /// A UNIQUE, PRIMARY KEY, FOREIGN KEY, CHECK or NOT NULL constraint refused the statement (which SQLite
    /// undid; the transaction around it is still open).
    public var isConstraintViolation: Bool { primaryCode == SQLITE_CONSTRAINT }

    /// A UNIQUE or PRIMARY KEY constraint refused the statement.
    public var isUniqueViolation: Bool {
        extendedCode == Self.constraintUnique || extendedCode == Self.constraintPrimaryKey
    }

    /// A FOREIGN KEY constraint refused the statement.
    public var isForeignKeyViolation: Bool { extendedCode == Self.constraintForeignKey }

    /// Another connection (another process: this one has a single writer) held a lock past the busy timeout.
    public var isBusy: Bool { primaryCode == SQLITE_BUSY }

    public var description: String {
        "SQLite error \(extendedCode) (\(String(cString: sqlite3_errstr(extendedCode)))): \(message)"
    }

    // The extended codes are C macros built with `|` and `<<`, which Swift does not import.
    private static let constraintForeignKey = SQLITE_CONSTRAINT | 3 << 8
    private static let constraintPrimaryKey = SQLITE_CONSTRAINT | 6 << 8
    private static let constraintUnique = SQLITE_CONSTRAINT | 8 << 8
}

extension SQLiteError {
    /// The error for result `code` of a call on `connection`, with the extended code and message SQLite
    /// recorded for it.
    init(code: Int32, connection: OpaquePointer?) {
        guard let connection else {
            self.init(extendedCode: code, message: String(cString: sqlite3_errstr(code)))
            return
        }
        let extended = sqlite3_extended_errcode(connection)
        // The connection's last error is this call's unless something reset it in between.
        let matches = extended & 0xFF == code & 0xFF
        self.init(
            extendedCode: matches ? extended : code,
            message: matches ? String(cString: sqlite3_errmsg(connection)) : String(cString: sqlite3_errstr(code))
        )
    }

    /// An error of our own making for a misuse SQLite would not catch (e.g. two statements in one string).
    static func misuse(_ message: String) -> SQLiteError {
        SQLiteError(extendedCode: SQLITE_MISUSE, message: message)
    }
}
