#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A file system call that failed: the call, the path it was about, and the system's reason. Every `errno`
/// of the file adapters becomes this error in `fileSystemCall`, and nowhere else.
public struct FileSystemError: Error, Sendable, Hashable, CustomStringConvertible {
    /// The call that failed, e.g. `open` or `link`.
    public var operation: String
    public var path: String
    /// The `errno` value, e.g. `ENOSPC`.
    public var code: Int32
    /// `strerror(code)`, e.g. "No space left on device".
    public var reason: String

    public init(_ operation: String, path: String, code: Int32) {
        self.operation = operation
        self.path = path
        self.code = code
        reason = String(cString: strerror(code))
    }

    public var description: String { "\(operation) \(path): \(reason)" }
}

/// Makes the POSIX call `call` about `path`, again when a signal interrupted it; a result of -1 becomes a
/// `FileSystemError` with `errno`.
func fileSystemCall<Result: FixedWidthInteger>(
    _ operation: String, _ path: String, _ call: () -> Result
) throws(FileSystemError) -> Result {
    while true {
        let result = call()
        if result != -1 { return result }
        let code = errno
        if code != EINTR { throw FileSystemError(operation, path: path, code: code) }
    }
}

/// Makes the POSIX call `call` about `path` that returns a pointer: nil with `errno` set becomes a
/// `FileSystemError`; nil without it (`readdir` at the end of a directory) is returned.
func fileSystemCall<Pointer>(
    _ operation: String, _ path: String, _ call: () -> Pointer?
) throws(FileSystemError) -> Pointer? {
    errno = 0
    if let result = call() { return result }
    let code = errno
    if code != 0 { throw FileSystemError(operation, path: path, code: code) }
    return nil
}
