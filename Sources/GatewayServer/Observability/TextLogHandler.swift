#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import Logging
import Synchronization

/// A swift-log handler for text lines in swift-log's `StreamLogHandler` layout,
/// `2026-12-05T03:41:07+0000 info gateway: key=value … [Module] message`, made for one line per RPC:
///
/// - the timestamp is formatted once per second (`localtime_r`; swift-log's `localtime` re-reads the time
///   zone file on every line, a `stat` per RPC that was 6% of a `Health/Check`'s server CPU);
/// - metadata is merged only when the line has some of its own, and sorted as it is written;
/// - lines go to a ``LogOutput`` (by default standard error through ``BatchedWriter``: a write per batch of
///   lines instead of one per line).
public struct TextLogHandler: LogHandler {
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
        // The common case (an access line: its own metadata only) takes the event's dictionary as it is.
        var merged = metadata.isEmpty && metadataProvider == nil ? event.metadata ?? [:] : metadata
        if !metadata.isEmpty || metadataProvider != nil {
            if let provided = metadataProvider?.get(), !provided.isEmpty { merged.merge(provided) { _, new in new } }
            if let own = event.metadata, !own.isEmpty { merged.merge(own) { _, new in new } }
        }
        if let error = event.error {
            merged["error.message"] = "\(error)"
            merged["error.type"] = "\(String(reflecting: type(of: error)))"
        }
        var line = Self.timestamps.now()
        line.reserveCapacity(256)
        line += " "
        line += event.level.rawValue
        if !label.isEmpty {
            line += " "
            line += label
        }
        line += ":"
        for key in merged.keys.sorted() {
            line += " "
            line += key
            line += "="
            line += merged[key]!.description
        }
        line += " ["
        line += event.source
        line += "] "
        line += event.message.description
        line += "\n"
        output.write(line)
    }

    static let timestamps = SecondTimestamps()
}

/// Local time as `%Y-%m-%dT%H:%M:%S%z`, formatted once per second.
final class SecondTimestamps: Sendable {
    private let cached = Mutex<(second: Int, text: String)>((-1, ""))

    init() {
        tzset()  // once: `localtime_r` then uses the zone it loaded
    }

    func now() -> String {
        let second = time(nil)
        if let text = cached.withLock({ $0.second == second ? $0.text : nil }) { return text }
        let text = Self.format(second)
        cached.withLock { $0 = (second, text) }
        return text
    }

    static func format(_ second: Int) -> String {
        var seconds = second
        var parts = tm()
        guard localtime_r(&seconds, &parts) != nil else { return "<unknown>" }
        var buffer = [CChar](repeating: 0, count: 64)
        let count = strftime(&buffer, buffer.count, "%Y-%m-%dT%H:%M:%S%z", &parts)
        return String(decoding: buffer[0..<count].map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }
}
