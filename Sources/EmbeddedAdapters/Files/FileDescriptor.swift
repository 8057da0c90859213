#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// An open file, closed when the last reference to it goes. Its calls block: run them off the cooperative pool.
final class FileDescriptor: Sendable {
    let rawValue: Int32
    /// The path it was opened with, for errors.
    let path: String

    init(opening path: String, flags: Int32, mode: mode_t = 0) throws(FileSystemError) {
        rawValue = try fileSystemCall("open", path) { open(path, flags | O_CLOEXEC, mode) }
        self.path = path
    }

    deinit {
        // Nothing is lost when this fails: written files were fsynced before, the others were only read.
        close(rawValue)
    }

    /// Writes all of `bytes` at the current position.
    func writeAll(_ bytes: UnsafeRawBufferPointer) throws(FileSystemError) {
        var rest = bytes
        while let start = rest.baseAddress, !rest.isEmpty {
            let written = try fileSystemCall("write", path) { write(rawValue, start, rest.count) }
            rest = UnsafeRawBufferPointer(rebasing: rest[written...])
        }
    }

    /// `count` bytes from `offset`, or fewer when the file ends first.
    func read(count: Int, at offset: Int64) throws -> [UInt8] {
        try [UInt8](unsafeUninitializedCapacity: count) { buffer, initialized in
            while initialized < count, let start = buffer.baseAddress {
                let read = try fileSystemCall("pread", path) {
                    pread(rawValue, start + initialized, count - initialized, off_t(offset) + off_t(initialized))
                }
                if read == 0 { break }
                initialized += read
            }
        }
    }

    /// Makes the written bytes durable.
    func sync() throws(FileSystemError) {
        _ = try fileSystemCall("fsync", path) { fsync(rawValue) }
    }

    /// The file's size in bytes.
    func size() throws(FileSystemError) -> Int64 {
        var info = stat()
        _ = try fileSystemCall("fstat", path) { fstat(rawValue, &info) }
        return Int64(info.st_size)
    }
}
