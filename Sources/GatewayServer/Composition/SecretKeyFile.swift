#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import Foundation
import OpenSSLCrypto

/// The gateway's own secret (32 random bytes in the data directory, owner-readable only), made on first start.
/// Purpose keys are derived from it (HMAC of the purpose name), so page tokens and download links never
/// share a key.
struct SecretKeyFile {
    let masterKey: [UInt8]

    static func loadOrCreate(at file: URL) throws -> SecretKeyFile {
        if let existing = FileManager.default.contents(atPath: file.path) {
            guard existing.count == 32 else { throw SecretKeyFileError(file: file, problem: "holds \(existing.count) bytes, not 32") }
            return SecretKeyFile(masterKey: Array(existing))
        }
        try FileManager.default.createDirectory(at: file.deletingLastPathComponent(), withIntermediateDirectories: true)
        let key = try Digest.randomBytes(32)
        // A temporary file (0600 from the start), fsync, then link() to the final name and fsync the folder: a
        // crash leaves no key or the whole key, and of two processes starting at once the second one to link
        // finds the first one's key (EEXIST) and uses it.
        let temporary = file.path + ".\(getpid()).tmp"
        let fd = open(temporary, O_WRONLY | O_CREAT | O_TRUNC, 0o600)
        guard fd >= 0 else { throw SecretKeyFileError(file: file, problem: "cannot be created (errno \(errno))") }
        let written = key.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
        let synced = fsync(fd) == 0
        close(fd)
        defer { unlink(temporary) }
        guard written == key.count, synced else {
            throw SecretKeyFileError(file: file, problem: "cannot be written (errno \(errno))")
        }
        if link(temporary, file.path) != 0 {
            guard errno == EEXIST else { throw SecretKeyFileError(file: file, problem: "cannot be written (errno \(errno))") }
            return try loadOrCreate(at: file)
        }
        let directory = open(file.deletingLastPathComponent().path, O_RDONLY)
        if directory >= 0 {
            fsync(directory)
            close(directory)
        }
        return SecretKeyFile(masterKey: key)
    }

    func key(for purpose: String) -> [UInt8] {
        Digest.hmacSHA256(key: masterKey, message: Array(purpose.utf8))
    }
}

struct SecretKeyFileError: Error, CustomStringConvertible {
    var file: URL
    var problem: String
    var description: String { "secret key file \(file.path) \(problem)" }
}
