internal import COpenSSL

/// A failed OpenSSL call: what we tried, and OpenSSL's own reason. The thread's error queue is cleared so it
/// cannot confuse the next OpenSSL user on this thread (TLS, libcurl).
public struct OpenSSLError: Error, Sendable, CustomStringConvertible {
    public var operation: String
    public var reason: String

    package init(_ operation: String) {
        self.operation = operation
        var reason = ""
        let code = ERR_get_error()
        if code != 0 {
            var buffer = [CChar](repeating: 0, count: 256)
            ERR_error_string_n(code, &buffer, buffer.count)
            reason = String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
        }
        ERR_clear_error()
        self.reason = reason
    }

    public var description: String {
        reason.isEmpty ? "OpenSSL: \(operation) failed" : "OpenSSL: \(operation) failed: \(reason)"
    }
}
