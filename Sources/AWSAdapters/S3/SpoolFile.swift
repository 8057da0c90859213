#if canImport(Glibc)
import Glibc
#endif
import GatewayApplication
import NIOPosix
import Synchronization

/// An unnamed temporary file (`O_TMPFILE`): an upload's bytes while they are hashed, before they go to S3
/// under their content address. It has no name, so it disappears when closed or when the process dies: a
/// crash leaves nothing behind to clean up. Its calls block and run on `threads`.
final class SpoolFile: Sendable {
    let descriptor: Int32
    let threads: NIOThreadPool

    init(in directory: String, threads: NIOThreadPool) throws {
        // O_TMPFILE is `__O_TMPFILE | O_DIRECTORY` (linux/fcntl.h), a macro Swift does not import.
        var fd = open(directory, 0o20_000_000 | O_DIRECTORY | O_RDWR | O_CLOEXEC, 0o600)
        if fd < 0 {
            // File systems without O_TMPFILE: a named file, unlinked at once.
            var template = Array("\(directory)/upload-XXXXXX".utf8CString)
            fd = template.withUnsafeMutableBufferPointer { mkstemp($0.baseAddress!) }
            if fd >= 0 { template.withUnsafeBufferPointer { _ = unlink($0.baseAddress!) } }
        }
        guard fd >= 0 else {
            throw DomainError(.unavailable, "cannot create a temporary file in \(directory) (errno \(errno))")
        }
        descriptor = fd
        self.threads = threads
    }

    deinit {
        // Closing the last descriptor of an unnamed file frees its blocks, which takes a while for a large
        // upload: on the spool's threads, not on whoever let go of it last (a handler on an event loop).
        let descriptor = descriptor
        threads.submit { _ in close(descriptor) }
    }

    func append(_ bytes: [UInt8]) async throws {
        let fd = descriptor
        try await threads.runIfActive {
            try bytes.withUnsafeBytes { buffer in
                var rest = buffer
                while let start = rest.baseAddress, !rest.isEmpty {
                    let written = write(fd, start, rest.count)
                    guard written > 0 else {
                        if written < 0 && errno == EINTR { continue }
                        throw DomainError(.unavailable, "writing a temporary upload file failed (errno \(errno))")
                    }
                    rest = UnsafeRawBufferPointer(rebasing: rest[written...])
                }
            }
        }
    }

    /// Up to `count` bytes from `offset`.
    func read(count: Int, at offset: Int64) async throws -> [UInt8] {
        let fd = descriptor
        return try await threads.runIfActive {
            try [UInt8](unsafeUninitializedCapacity: count) { buffer, initialized in
                while initialized < count, let start = buffer.baseAddress {
                    let n = pread(fd, start + initialized, count - initialized, off_t(offset) + off_t(initialized))
                    if n < 0 && errno == EINTR { continue }
                    guard n >= 0 else { throw DomainError(.unavailable, "reading a temporary upload file failed (errno \(errno))") }
                    if n == 0 { break }
                    initialized += n
                }
            }
        }
    }

    /// `length` bytes from `offset`, as a request body read a mebibyte at a time as it is sent.
    func body(offset: Int64, length: Int64) -> HTTPBodySource {
        let end = offset + length
        let position = Mutex(offset)
        return HTTPBodySource(length: length) { [self] in
            let next = position.withLock { at -> (Int64, Int)? in
                guard at < end else { return nil }
                let count = Int(min(1 << 20, end - at))
                defer { at += Int64(count) }
                return (at, count)
            }
            guard let (at, count) = next else { return nil }
            let bytes = try await read(count: count, at: at)
            guard bytes.count == count else { throw DomainError(.unavailable, "a temporary upload file is shorter than written") }
            return bytes
        }
    }
}
