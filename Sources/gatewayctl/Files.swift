import ArgumentParser
#if canImport(Glibc)
import Glibc
#endif
import Foundation
import GatewayClient
import OpenSSLCrypto
import Synchronization

struct FileCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "file", abstract: "Files: upload, download, info, list, delete, and download links.",
        subcommands: [Upload.self, Download.self, Info.self, List.self, Delete.self, URLCommand.self]
    )

    static let columns: [Column<Gateway_File_V1_FileInfo>] = [
        Column("ID") { $0.id }, Column("NAME") { $0.filename }, Column("SIZE") { "\($0.size)" }, Column("TYPE") { $0.contentType }, Column("SHA-256") { $0.sha256 },
        Column("CREATED") { $0.createdAt?.text ?? "" },
    ]

    struct Upload: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Upload files (several at once); prints each one's id, key and SHA-256.",
            discussion: "A progress bar with rate and ETA is drawn on stderr when it is a terminal."
        )
        @OptionGroup var options: GlobalOptions
        @Argument(help: "The files to upload.") var paths: [String]
        @Option(help: "Content type (default: detected by the gateway from the bytes).") var contentType = ""
        @Option(name: .customLong("meta"), help: ArgumentHelp("Metadata entry (repeatable).", valueName: "key=value")) var metadata: [String] = []
        @Option(help: "Files uploaded at the same time.") var parallel = 4

        func run() async throws {
            let context = try Context(options)
            var entries: [String: String] = [:]
            for entry in metadata {
                guard let equals = entry.firstIndex(of: "=") else { throw UsageError("--meta \(entry): an entry is key=value") }
                entries[String(entry[..<equals])] = String(entry[entry.index(after: equals)...])
            }
            // Every file is checked before anything is sent.
            let files = try paths.map { path in
                guard let size = (try? FileManager.default.attributesOfItem(atPath: path))?[.size] as? NSNumber else {
                    throw LocalFailure("\(path): no such file")
                }
                return (path: path, size: size.int64Value)
            }
            let printer = Printer(format: context.output)
            let progress = Progress.forStandardError()
            let metadata = entries
            let failure: (any Error)? = try await context.withConnection { connection in
                try await withThrowingTaskGroup(of: (any Error)?.self) { group in
                    var failure: (any Error)?
                    for (index, file) in files.enumerated() {
                        if index >= max(1, parallel), let done = try await group.next() { failure = failure ?? done }
                        group.addTask {
                            let bar = progress?.bar(name: (file.path as NSString).lastPathComponent, total: file.size)
                            defer { bar?.finish() }
                            do {
                                let info = try await Self.upload(
                                    file.path, connection: connection, contentType: contentType, metadata: metadata, bar: bar,
                                    timeout: context.streamTimeout(default: .seconds(86_400))
                                )
                                if context.output == .json { try printer.message(info) } else { printer.line("\(info.id)  \(info.key)  \(info.sha256)  \(file.path)") }
                                return nil
                            } catch {
                                return error
                            }
                        }
                    }
                    for try await done in group { failure = failure ?? done }
                    return failure
                }
            }
            // Every file was tried; the first failure decides the exit code.
            if let failure { throw failure }
        }

        static func upload(
            _ path: String, connection: GatewayConnection, contentType: String, metadata: [String: String], bar: Progress.Bar?,
            timeout: Duration
        ) async throws -> Gateway_File_V1_FileInfo {
            guard let handle = FileHandle(forReadingAtPath: path) else { throw LocalFailure("\(path): cannot be read") }
            defer { try? handle.close() }
            let name = (path as NSString).lastPathComponent
            return try await connection.files.uploadFile(options: .init(timeout: timeout)) { writer in
                try await writer.write(.with {
                    $0.data = .header(.with {
                        $0.filename = name
                        $0.contentType = contentType
                        $0.metadata = metadata
                    })
                })
                while true {
                    // 64 KiB at a time: memory stays bounded whatever the file's size.
                    let chunk = try handle.read(upToCount: 65_536) ?? Data()
                    if chunk.isEmpty { break }
                    try await writer.write(.with { $0.data = .chunk(Array(chunk)) })
                    bar?.advance(by: Int64(chunk.count))
                }
            }
        }
    }

    struct Download: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Download a file; its SHA-256 is checked against the file's info, and a partial file is removed on failure."
        )
        @OptionGroup var options: GlobalOptions
        @Argument var id: String
        @Option(name: [.customShort("o"), .customLong("output-file")], help: "Where to write it (- for stdout).") var output: String
        @Option(help: ArgumentHelp("Only bytes A to B, inclusive (B may be left out).", valueName: "A-B")) var range: String?

        /// `A-B` (or `A-`) as an offset and a length (0: to the end).
        static func parse(_ range: String) throws -> (Int64, Int64) {
            let parts = range.split(separator: "-", maxSplits: 1, omittingEmptySubsequences: false)
            guard parts.count == 2, let start = Int64(parts[0]), start >= 0, parts[1].isEmpty || (Int64(parts[1]) ?? -1) >= start else {
                throw UsageError("--range \(range): expected A-B with 0 <= A <= B")
            }
            return (start, Int64(parts[1]).map { $0 - start + 1 } ?? 0)
        }

        func run() async throws {
            let context = try Context(options)
            let (offset, length) = try range.map(Self.parse) ?? (0, 0)
            let toStdout = output == "-"
            guard toStdout || FileManager.default.createFile(atPath: output, contents: nil) else {
                throw LocalFailure("\(output): cannot be written")
            }
            let handle = toStdout ? FileHandle.standardOutput : FileHandle(forWritingAtPath: output)!
            let progress = Progress.forStandardError()
            do {
                let (info, written, digest) = try await context.withConnection { connection in
                    try await connection.files.downloadFile(.with {
                        $0.id = id
                        $0.offset = offset
                        $0.length = length
                    }, options: .init(timeout: context.streamTimeout(default: .seconds(86_400)))) { response in
                        var info: Gateway_File_V1_FileInfo?
                        var bar: Progress.Bar?
                        let hasher = SHA256Hasher()
                        var written: Int64 = 0
                        for try await part in response.messages {
                            switch part.data {
                            case .info(let received)?:
                                info = received
                                let expected = length == 0 ? received.size - offset : min(length, received.size - offset)
                                bar = progress?.bar(name: received.filename, total: max(0, expected))
                            case .chunk(let bytes)?:
                                try handle.write(contentsOf: bytes)
                                hasher.update(bytes)
                                written += Int64(bytes.count)
                                bar?.advance(by: Int64(bytes.count))
                            case nil:
                                continue
                            }
                        }
                        bar?.finish()
                        guard let info else { throw LocalFailure("the gateway sent no file info") }
                        return (info, written, Hex.of(hasher.finalize()))
                    }
                }
                if !toStdout { try handle.close() }
                // A whole file must hash to what the gateway says it stores.
                if range == nil && (written != info.size || digest != info.sha256) {
                    throw LocalFailure("the download does not match the file's info (\(written) bytes, SHA-256 \(digest); expected \(info.size), \(info.sha256))")
                }
                if !toStdout { FileHandle.standardErrorLine("\(output): \(written) bytes, SHA-256 \(digest)") }
            } catch {
                if !toStdout {
                    try? handle.close()
                    try? FileManager.default.removeItem(atPath: output)
                }
                throw error
            }
        }
    }

    struct Info: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "A file's info.")
        @OptionGroup var options: GlobalOptions
        @Argument var id: String

        func run() async throws {
            let context = try Context(options)
            try await context.show { try await $0.files.getFileInfo(.with { $0.id = id }) }
        }
    }

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "The caller's files.")
        @OptionGroup var options: GlobalOptions
        @Option var pageSize: Int32 = 100
        @Flag(help: "Follow the page tokens to the end.") var all = false

        func run() async throws {
            let context = try Context(options)
            let files = try await context.withConnection { connection in
                var token = ""
                var files: [Gateway_File_V1_FileInfo] = []
                repeat {
                    let page = try await connection.files.listFiles(.with {
                        $0.pageSize = pageSize
                        $0.pageToken = token
                    })
                    files += page.files
                    token = page.nextPageToken
                } while all && !token.isEmpty
                return files
            }
            try Printer(format: context.output).list(files, columns: FileCommand.columns)
        }
    }

    struct Delete: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Delete a file record (and its bytes, with the last record that has them).")
        @OptionGroup var options: GlobalOptions
        @Argument var id: String

        func run() async throws {
            let context = try Context(options)
            _ = try await context.withConnection { try await $0.files.deleteFile(.with { $0.id = id }) }
            if context.output == .json { Printer(format: .json).line("{}") }
        }
    }

    struct URLCommand: AsyncParsableCommand {
        static let configuration = CommandConfiguration(commandName: "url", abstract: "A link that downloads the file without a token until it expires.")
        @OptionGroup var options: GlobalOptions
        @Argument var id: String
        @Option(help: "Seconds the link lasts (0: the server's default).") var ttl: Int64 = 0

        func run() async throws {
            let context = try Context(options)
            let response = try await context.withConnection { connection in
                try await connection.files.getDownloadUrl(.with {
                    $0.id = id
                    if ttl > 0 { $0.ttl = .with { $0.seconds = ttl } }
                })
            }
            if context.output == .json { try Printer(format: .json).message(response) } else { Printer(format: .text).line(response.url) }
        }
    }
}

enum Hex {
    static func of(_ bytes: [UInt8]) -> String {
        let digits = Array("0123456789abcdef".utf8)
        return String(decoding: bytes.flatMap { [digits[Int($0 >> 4)], digits[Int($0 & 15)]] }, as: UTF8.self)
    }
}

/// Progress bars on stderr, only when it is a terminal: `name  [=====>    ]  45%  12.3 MiB/s  ETA 3s`, one line
/// per transfer, redrawn at most ten times a second.
final class Progress: Sendable {
    private struct Line {
        var name: String
        var total: Int64
        var done: Int64 = 0
        var finished = false
    }

    private let state = Mutex<(lines: [Line], drawn: Int, lastDraw: ContinuousClock.Instant?)>(([], 0, nil))
    private let started = ContinuousClock.now

    /// Bars when stderr is a terminal, else nil (nothing is drawn when output is piped or logged).
    static func forStandardError() -> Progress? {
        isatty(2) == 1 ? Progress() : nil
    }

    final class Bar: Sendable {
        let progress: Progress
        let index: Int
        init(progress: Progress, index: Int) {
            self.progress = progress
            self.index = index
        }

        func advance(by count: Int64) { progress.advance(index, by: count) }
        func finish() { progress.finish(index) }
    }

    func bar(name: String, total: Int64) -> Bar {
        let index = state.withLock { state in
            state.lines.append(Line(name: name, total: total))
            return state.lines.count - 1
        }
        draw(force: true)
        return Bar(progress: self, index: index)
    }

    func advance(_ index: Int, by count: Int64) {
        state.withLock { $0.lines[index].done += count }
        draw(force: false)
    }

    func finish(_ index: Int) {
        state.withLock { $0.lines[index].finished = true }
        draw(force: true)
    }

    private func draw(force: Bool) {
        let now = ContinuousClock.now
        let text: String? = state.withLock { state in
            if !force, let last = state.lastDraw, now - last < .milliseconds(100) { return nil }
            state.lastDraw = now
            let elapsed = max(0.001, Double((now - started).components.attoseconds) / 1e18 + Double((now - started).components.seconds))
            var out = state.drawn > 0 ? "\u{1B}[\(state.drawn)A" : ""
            for line in state.lines {
                let fraction = line.total > 0 ? min(1, Double(line.done) / Double(line.total)) : (line.finished ? 1 : 0)
                let width = 30
                let filled = Int(fraction * Double(width))
                let bar = String(repeating: "=", count: filled) + (filled < width ? ">" + String(repeating: " ", count: width - filled - 1) : "")
                let rate = Double(line.done) / elapsed
                let eta = rate > 0 && !line.finished ? " ETA \(Int(Double(line.total - line.done) / rate))s" : ""
                let name = line.name.count > 24 ? String(line.name.prefix(21)) + "..." : line.name
                out += "\r\u{1B}[2K\(name)  [\(bar)] \(Int(fraction * 100))%  \(Self.rate(rate))\(eta)\n"
            }
            state.drawn = state.lines.count
            return out
        }
        if let text { FileHandle.standardError.write(Data(text.utf8)) }
    }

    private static func rate(_ bytesPerSecond: Double) -> String {
        let units = ["B/s", "KiB/s", "MiB/s", "GiB/s"]
        var value = bytesPerSecond
        var unit = 0
        while value >= 1024 && unit < units.count - 1 {
            value /= 1024
            unit += 1
        }
        return String(format: "%.1f", value) + " " + units[unit]
    }
}
