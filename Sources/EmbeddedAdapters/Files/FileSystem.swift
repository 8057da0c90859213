#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// The calls on paths the file adapters make. They block: run them off the cooperative pool.
enum FileSystem {
    /// Creates the directory; false when it was there already.
    static func makeDirectory(_ path: String, mode: mode_t = 0o755) throws(FileSystemError) -> Bool {
        do {
            _ = try fileSystemCall("mkdir", path) { mkdir(path, mode) }
            return true
        } catch where error.code == EEXIST {
            return false
        }
    }

    /// Makes the names created in (or removed from) the directory durable, as `fsync` does for a file's bytes.
    static func syncDirectory(_ path: String) throws(FileSystemError) {
        try FileDescriptor(opening: path, flags: O_RDONLY | O_DIRECTORY).sync()
    }

    /// Gives the file at `existing` the second name `new`; false when `new` is taken (and left untouched).
    static func hardLink(_ existing: String, as new: String) throws(FileSystemError) -> Bool {
        do {
            _ = try fileSystemCall("link", new) { link(existing, new) }
            return true
        } catch where error.code == EEXIST {
            return false
        }
    }

    /// Removes the file's name; false when there was none.
    @discardableResult
    static func removeFile(_ path: String) throws(FileSystemError) -> Bool {
        do {
            _ = try fileSystemCall("unlink", path) { unlink(path) }
            return true
        } catch where error.code == ENOENT {
            return false
        }
    }

    /// The file's size in bytes, or nil when there is no such file.
    static func size(of path: String) throws(FileSystemError) -> Int64? {
        var info = stat()
        do {
            _ = try fileSystemCall("stat", path) { stat(path, &info) }
            return Int64(info.st_size)
        } catch where error.code == ENOENT {
            return nil
        }
    }

    /// The names in the directory, without `.` and `..`.
    static func names(in directory: String) throws(FileSystemError) -> [String] {
        guard let stream = try fileSystemCall("opendir", directory, { opendir(directory) }) else { return [] }
        defer { closedir(stream) }
        var names: [String] = []
        while let entry = try fileSystemCall("readdir", directory, { readdir(stream) }) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
            if name != "." && name != ".." { names.append(name) }
        }
        return names
    }
}
