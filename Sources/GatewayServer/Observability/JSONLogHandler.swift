#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import Logging
import Synchronization

/// A swift-log handler that writes one JSON object per line: `timestamp` (RFC 3339, UTC, milliseconds),
/// `level`, `label`, `message`, `metadata` (an object, keys sorted) and `error` when the event has one. Integer,
/// floating-point and boolean metadata logged as `.stringConvertible` are written as JSON numbers and booleans.
public struct JSONLogHandler: LogHandler {
    public var logLevel: Logger.Level = .info
    public var metadata: Logger.Metadata = [:]
    public var metadataProvider: Logger.MetadataProvider?
    private let label: String
    private let output: LogOutput

    public init(label: String, output: LogOutput = .standardError, metadataProvider: Logger.MetadataProvider? = nil) {
        self.label = label
        self.output = output
        self.metadataProvider = metadataProvider
    }

    public subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    public func log(event: LogEvent) {
        var merged = metadata
        if let provided = metadataProvider?.get() { merged.merge(provided) { _, new in new } }
        if let own = event.metadata { merged.merge(own) { _, new in new } }
        var line = "{\"timestamp\":"
        Self.appendString(Self.timestamp(), to: &line)
        line += ",\"level\":"
        Self.appendString(event.level.rawValue, to: &line)
        line += ",\"label\":"
        Self.appendString(label, to: &line)
        line += ",\"message\":"
        Self.appendString(event.message.description, to: &line)
        if !merged.isEmpty {
            line += ",\"metadata\":"
            Self.append(.dictionary(merged), to: &line)
        }
        if let error = event.error {
            line += ",\"error\":"
            Self.appendString("\(error)", to: &line)
        }
        line += "}\n"
        output.write(line)
    }

    // MARK: - JSON

    static func append(_ value: Logger.Metadata.Value, to line: inout String) {
        switch value {
        case .string(let text):
            appendString(text, to: &line)
        case .stringConvertible(let convertible):
            switch convertible {
            case let flag as Bool: line += flag ? "true" : "false"
            case let number as any BinaryInteger: line += "\(number)"
            case let number as Double where number.isFinite: line += "\(number)"
            case let number as Float where number.isFinite: line += "\(number)"
            default: appendString(convertible.description, to: &line)
            }
        case .array(let values):
            line += "["
            for (index, element) in values.enumerated() {
                if index > 0 { line += "," }
                append(element, to: &line)
            }
            line += "]"
        case .dictionary(let values):
            line += "{"
            for (index, key) in values.keys.sorted().enumerated() {
                if index > 0 { line += "," }
                appendString(key, to: &line)
                line += ":"
                append(values[key]!, to: &line)
            }
            line += "}"
        }
    }

    /// A JSON string literal: quotes, backslashes and control characters escaped, the rest as UTF-8.
    static func appendString(_ text: String, to line: inout String) {
        line += "\""
        for scalar in text.unicodeScalars {
            switch scalar {
            case "\"": line += "\\\""
            case "\\": line += "\\\\"
            case "\n": line += "\\n"
            case "\r": line += "\\r"
            case "\t": line += "\\t"
            case _ where scalar.value < 0x20 || scalar.value == 0x7F:
                let hex = String(scalar.value, radix: 16)
                line += "\\u" + String(repeating: "0", count: 4 - hex.count) + hex
            default:
                line.unicodeScalars.append(scalar)
            }
        }
        line += "\""
    }

    /// Now as `2025-01-31T12:34:56.789Z`.
    static func timestamp() -> String {
        var now = timespec()
        clock_gettime(CLOCK_REALTIME, &now)
        var seconds = now.tv_sec
        var parts = tm()
        gmtime_r(&seconds, &parts)
        func padded(_ value: Int32, _ width: Int) -> String {
            let digits = String(value)
            return String(repeating: "0", count: max(0, width - digits.count)) + digits
        }
        return "\(padded(parts.tm_year + 1900, 4))-\(padded(parts.tm_mon + 1, 2))-\(padded(parts.tm_mday, 2))T"
            + "\(padded(parts.tm_hour, 2)):\(padded(parts.tm_min, 2)):\(padded(parts.tm_sec, 2))."
            + "\(padded(Int32(now.tv_nsec / 1_000_000), 3))Z"
    }
}

/// Where log lines go: each line is written whole, so lines from concurrent tasks never interleave.
public struct LogOutput: Sendable {
    private let writeLine: @Sendable (String) -> Void

    public init(_ write: @escaping @Sendable (String) -> Void) {
        writeLine = write
    }

    public func write(_ line: String) {
        writeLine(line)
    }

    /// The process's standard error, through a ``BatchedWriter``. ``LogOutput/flushStandardError()`` (also run
    /// at exit) writes what is still buffered.
    public static let standardError = LogOutput { BatchedWriter.standardError.write($0) }

    /// Writes the lines still buffered for standard error, and returns once they are written.
    public static func flushStandardError() {
        BatchedWriter.standardError.flush()
    }
}

/// Lines for a file descriptor, written by a thread of its own: a writer appends its line to a buffer under a
/// short lock; the first line after a quiet spell wakes the thread, which waits `window` for more, writes
/// everything buffered with one `write(2)`, and goes on so until the buffer stays empty. Under load that is
/// one wake-up and one system call per window instead of one of each per line (waking the thread per line
/// cost more than the write it saved: a context switch per RPC on a server pinned to one processor). Lines
/// reach the descriptor at most `window` late. Nothing is dropped: past 1 MiB buffered (the descriptor is
/// slower than the lines), writers write the buffer themselves, in order, as an unbuffered writer would.
/// Lines written just before the process dies of a signal can be lost; `flush()` runs at exit.
final class BatchedWriter: Sendable {
    private struct State {
        var buffer: [UInt8] = []
        var idle = true
    }

    private let descriptor: Int32
    private let state = Mutex(State())
    /// Held while a batch is taken and written, so batches reach the descriptor in the order they were taken.
    private let writing = Mutex(())
    private let wake = Semaphore()
    static let limit = 1 << 20
    /// How long the thread gathers lines before it writes them, in nanoseconds.
    static let window = 5_000_000

    static let standardError: BatchedWriter = {
        let writer = BatchedWriter(descriptor: 2)
        atexit { BatchedWriter.standardError.flush() }
        return writer
    }()

    init(descriptor: Int32) {
        self.descriptor = descriptor
        let thread = UnsafeMutablePointer<pthread_t>.allocate(capacity: 1)
        defer { thread.deallocate() }
        let box = Unmanaged.passRetained(self).toOpaque()
        let created = pthread_create(thread, nil, { argument in
            Unmanaged<BatchedWriter>.fromOpaque(argument!).takeRetainedValue().run()
        }, box)
        if created != 0 {
            Unmanaged<BatchedWriter>.fromOpaque(box).release()
            fatalError("cannot start the log writer thread (error \(created))")
        }
        pthread_detach(thread.pointee)
    }

    func write(_ line: String) {
        let (wakeWriter, overflowing) = state.withLock { state -> (Bool, Bool) in
            state.buffer.append(contentsOf: line.utf8)
            defer { state.idle = false }
            return (state.idle, state.buffer.count > Self.limit)
        }
        if wakeWriter { wake.signal() }
        if overflowing { flush() }
    }

    /// Writes what is buffered now.
    func flush() {
        writing.withLock { _ in
            let batch = state.withLock { state -> [UInt8] in
                defer { state.buffer.removeAll(keepingCapacity: false) }
                return state.buffer
            }
            writeAll(batch)
        }
    }

    private func run() -> Never {
        while true {
            wake.wait()
            repeat {
                var window = timespec(tv_sec: 0, tv_nsec: Self.window)
                var left = timespec()
                while nanosleep(&window, &left) != 0 && errno == EINTR { window = left }
                flush()
            } while !state.withLock { state in
                if state.buffer.isEmpty { state.idle = true }
                return state.idle
            }
        }
    }

    private func writeAll(_ bytes: [UInt8]) {
        bytes.withUnsafeBytes { buffer in
            var offset = 0
            while offset < buffer.count {
                let written = systemWrite(descriptor, buffer.baseAddress! + offset, buffer.count - offset)
                if written > 0 {
                    offset += written
                } else if written < 0 && errno == EINTR {
                    continue
                } else {
                    return  // the descriptor is gone: the lines cannot go anywhere
                }
            }
        }
    }
}

/// A counting semaphore over a POSIX one (the writer thread sleeps on it).
private final class Semaphore: @unchecked Sendable {
    // @unchecked: sem_t is only touched through sem_post and sem_wait, which are thread-safe.
    private let semaphore = UnsafeMutablePointer<sem_t>.allocate(capacity: 1)

    init() {
        sem_init(semaphore, 0, 0)
    }

    func signal() {
        sem_post(semaphore)
    }

    func wait() {
        while sem_wait(semaphore) != 0 && errno == EINTR {}
    }
}

#if canImport(Glibc)
private let systemWrite = Glibc.write
#elseif canImport(Darwin)
private let systemWrite = Darwin.write
#endif
