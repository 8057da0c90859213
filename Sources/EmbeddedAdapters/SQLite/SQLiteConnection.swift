internal import CSQLite

/// One SQLite connection (`sqlite3*`), opened without SQLite's own mutex: it must be used by one thread at a
/// time, which `SQLiteDatabase` guarantees by handing it only to closures it runs on its threads. Prepared
/// statements are cached per SQL string, so the SQL passed in should be the program's constants.
public final class SQLiteConnection {
    private var handle: OpaquePointer?
    private var statements: [String: Statement] = [:]

    /// Opens `path` (created if missing, unless `readOnly`).
    init(path: String, readOnly: Bool, busyTimeout: Duration) throws {
        let access = readOnly ? SQLITE_OPEN_READONLY : SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE
        var handle: OpaquePointer?
        let result = sqlite3_open_v2(path, &handle, access | SQLITE_OPEN_NOMUTEX, nil)
        guard result == SQLITE_OK, let handle else {
            let error = SQLiteError(code: result, connection: handle)
            sqlite3_close_v2(handle)
            throw SQLiteError(extendedCode: error.extendedCode, message: "cannot open \(path): \(error.message)")
        }
        self.handle = handle
        sqlite3_extended_result_codes(handle, 1)
        let (seconds, attoseconds) = busyTimeout.components
        sqlite3_busy_timeout(handle, Int32(clamping: seconds * 1000 + attoseconds / 1_000_000_000_000_000))
    }

    deinit { close() }

    /// Finalizes the cached statements and closes the connection; later calls fail with `SQLITE_MISUSE`.
    /// Closing may checkpoint the WAL, so it blocks: call it on the connection's thread.
    func close() {
        statements.removeAll()  // each finalizes in its deinit
        sqlite3_close_v2(handle)  // v2: never fails; frees once the last statement is finalized
        handle = nil
    }

    /// Runs `sql`, which may hold several statements and returns no rows (schema changes, pragmas).
    public func execute(_ sql: String) throws {
        try check(sqlite3_exec(try open(), sql, nil, nil, nil))
    }

    /// Runs one statement to completion, ignoring any rows it returns.
    public func run(_ sql: String, _ bindings: [SQLiteValue] = []) throws {
        try withStatement(sql, bindings) { statement in
            while try step(statement) {}
        }
    }

    /// The rows of one query, each turned into a value by `read`.
    public func query<Row>(_ sql: String, _ bindings: [SQLiteValue] = [], read: (SQLiteRow) throws -> Row) throws -> [Row] {
        try withStatement(sql, bindings) { statement in
            var rows: [Row] = []
            while try step(statement) {
                rows.append(try read(SQLiteRow(statement: statement)))
            }
            return rows
        }
    }

    /// The first row of one query turned into a value by `read`, or nil when it returns no rows.
    public func first<Row>(_ sql: String, _ bindings: [SQLiteValue] = [], read: (SQLiteRow) throws -> Row) throws -> Row? {
        try withStatement(sql, bindings) { statement in
            try step(statement) ? try read(SQLiteRow(statement: statement)) : nil
        }
    }

    /// Rows changed by the last INSERT, UPDATE or DELETE.
    public var changes: Int { handle.map { Int(sqlite3_changes($0)) } ?? 0 }

    /// The rowid of the last row this connection inserted (sqlite.org/c3ref/last_insert_rowid.html).
    public var lastInsertRowID: Int64 { handle.map { sqlite3_last_insert_rowid($0) } ?? 0 }

    /// `PRAGMA integrity_check` found nothing wrong.
    public func integrityCheck() throws -> Bool {
        try query("PRAGMA integrity_check") { try $0.text(0) } == ["ok"]
    }

    enum TransactionKind: String {
        /// Takes the write lock at BEGIN, so the transaction cannot fail later for want of it.
        case immediate = "BEGIN IMMEDIATE"
        /// Reads see one snapshot from the first read on.
        case deferred = "BEGIN DEFERRED"
    }

    /// Runs `body` in a transaction, committed when it returns and rolled back when it (or COMMIT) throws.
    func transaction<T>(_ kind: TransactionKind, _ body: () throws -> T) throws -> T {
        try run(kind.rawValue)
        do {
            let result = try body()
            try run("COMMIT")
            return result
        } catch {
            // Some errors (SQLITE_FULL, SQLITE_IOERR, ...) already rolled back; ROLLBACK would then fail.
            if isInTransaction {
                try? run("ROLLBACK")
            }
            throw error
        }
    }

    /// Runs `body` in a savepoint of the open transaction: a throw undoes only what `body` did, and the
    /// transaction goes on (unless the failure already rolled all of it back: see `isInTransaction`).
    func savepoint<T>(_ body: () throws -> T) throws -> T {
        try run("SAVEPOINT write")
        do {
            let result = try body()
            try run("RELEASE write")
            return result
        } catch {
            if isInTransaction {
                try? run("ROLLBACK TO write")
                try? run("RELEASE write")
            }
            throw error
        }
    }

    /// A transaction is open (some errors, such as SQLITE_FULL and SQLITE_IOERR, end it by themselves).
    var isInTransaction: Bool { handle.map { sqlite3_get_autocommit($0) == 0 } ?? false }

    // MARK: Statements

    private func open() throws -> OpaquePointer {
        guard let handle else { throw SQLiteError.misuse("the connection is closed") }
        return handle
    }

    private func check(_ result: Int32) throws {
        guard result == SQLITE_OK else { throw SQLiteError(code: result, connection: handle) }
    }

    /// Steps once: true at a row, false when done.
    private func step(_ statement: OpaquePointer) throws -> Bool {
        switch sqlite3_step(statement) {
        case SQLITE_ROW: return true
        case SQLITE_DONE: return false
        case let result: throw SQLiteError(code: result, connection: handle)
        }
    }

    /// Runs `body` with the cached statement for `sql`, bound to `bindings`, and resets it afterwards (an
    /// unreset statement would keep its read transaction open).
    private func withStatement<T>(_ sql: String, _ bindings: [SQLiteValue], _ body: (OpaquePointer) throws -> T) throws -> T {
        var statement = try cachedStatement(sql)
        if sqlite3_stmt_busy(statement.pointer) != 0 {
            // The same SQL is already being stepped further up the stack: use a fresh statement.
            statement = try prepare(sql)
        }
        let pointer = statement.pointer
        defer {
            sqlite3_reset(pointer)
            sqlite3_clear_bindings(pointer)
        }
        guard Int(sqlite3_bind_parameter_count(pointer)) == bindings.count else {
            throw SQLiteError.misuse("\(bindings.count) values for the parameters of: \(sql)")
        }
        for (index, value) in zip(Int32(1)..., bindings) {
            try check(bind(value, to: index, of: pointer))
        }
        return try withExtendedLifetime(statement) { try body(pointer) }
    }

    private func bind(_ value: SQLiteValue, to index: Int32, of statement: OpaquePointer) -> Int32 {
        switch value {
        case .integer(let integer):
            return sqlite3_bind_int64(statement, index, integer)
        case .text(let text):
            // The explicit length keeps embedded NULs; TRANSIENT makes SQLite copy the bytes.
            return text.withCString {
                sqlite3_bind_text64(statement, index, $0, UInt64(text.utf8.count), CSQLite_transient(), UInt8(SQLITE_UTF8))
            }
        case .blob(let bytes) where bytes.isEmpty:
            // A blob with a null pointer would be bound as NULL.
            return sqlite3_bind_zeroblob(statement, index, 0)
        case .blob(let bytes):
            return bytes.withUnsafeBytes {
                sqlite3_bind_blob64(statement, index, $0.baseAddress, UInt64($0.count), CSQLite_transient())
            }
        case .null:
            return sqlite3_bind_null(statement, index)
        }
    }

    private func cachedStatement(_ sql: String) throws -> Statement {
        if let statement = statements[sql] { return statement }
        let statement = try prepare(sql)
        statements[sql] = statement
        return statement
    }

    private func prepare(_ sql: String) throws -> Statement {
        let handle = try open()
        return try sql.withCString { text in
            var pointer: OpaquePointer?
            var rest: UnsafePointer<CChar>?
            try check(sqlite3_prepare_v3(handle, text, -1, UInt32(SQLITE_PREPARE_PERSISTENT), &pointer, &rest))
            guard let pointer else { throw SQLiteError.misuse("no statement in: \(sql)") }
            let statement = Statement(pointer)
            // SQLite prepares the first statement only; anything after it would be silently ignored.
            if let rest, String(cString: rest).contains(where: { !$0.isWhitespace }) {
                throw SQLiteError.misuse("more than one statement in: \(sql)")
            }
            return statement
        }
    }

    /// Owns one `sqlite3_stmt*`.
    private final class Statement {
        let pointer: OpaquePointer
        init(_ pointer: OpaquePointer) { self.pointer = pointer }
        deinit { sqlite3_finalize(pointer) }
    }
}
