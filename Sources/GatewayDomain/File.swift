/// A SHA-256 digest as 64 lower-case hex digits: the identity of a blob's bytes.
public struct ContentHash: Sendable, Hashable, CustomStringConvertible {
    public let hex: String

    /// Accepts exactly 64 hex digits (either case); nil otherwise.
    public init?(hex text: String) {
        let lower = text.lowercased()
        guard lower.utf8.count == 64, lower.utf8.allSatisfy({ (48...57).contains($0) || (97...102).contains($0) }) else {
            return nil
        }
        hex = lower
    }

    public init(digest: [UInt8]) {
        precondition(digest.count == 32, "a SHA-256 digest has 32 bytes")
        let digits = Array("0123456789abcdef".utf8)
        hex = String(decoding: digest.flatMap { [digits[Int($0 >> 4)], digits[Int($0 & 15)]] }, as: UTF8.self)
    }

    public var description: String { hex }
}

/// Where a blob lives: `ab/<sha256>.<ext>`, the first two hex digits fanning the blobs out over 256 folders.
public struct BlobKey: Sendable, Hashable, CustomStringConvertible {
    public let value: String
    public let hash: ContentHash

    public init(hash: ContentHash, fileExtension: String) {
        self.hash = hash
        let prefix = String(hash.hex.prefix(2))
        value = fileExtension.isEmpty ? "\(prefix)/\(hash.hex)" : "\(prefix)/\(hash.hex).\(fileExtension)"
    }

    /// Parses a key as `init(hash:fileExtension:)` writes it; nil for anything else (so a key taken from a URL
    /// can never name a path outside the blob folders).
    public init?(parsing text: String) {
        let parts = text.split(separator: "/", omittingEmptySubsequences: false)
        guard parts.count == 2, parts[0].utf8.count == 2 else { return nil }
        let name = parts[1].split(separator: ".", maxSplits: 1, omittingEmptySubsequences: false)
        guard let hash = ContentHash(hex: String(name[0])), hash.hex == String(name[0]), hash.hex.hasPrefix(parts[0]) else {
            return nil
        }
        let fileExtension = name.count == 2 ? String(name[1]) : ""
        guard name.count == 1 || FileExtension.isValid(fileExtension) else { return nil }
        self.init(hash: hash, fileExtension: fileExtension)
    }

    public var description: String { value }
}

/// File name extensions in keys: 1 to 10 lower-case letters or digits.
public enum FileExtension {
    public static func isValid(_ text: String) -> Bool {
        (1...10).contains(text.utf8.count) && text.utf8.allSatisfy { (97...122).contains($0) || (48...57).contains($0) }
    }

    /// The extension for a blob key, from the content type sniffed from the bytes (`bin` when unknown): the
    /// key then depends on the bytes alone, so equal bytes always share one blob.
    public static func forKey(contentType sniffed: String) -> String {
        ContentSniffer.extensions[sniffed] ?? "bin"
    }

    /// The content type a key's extension stands for (what a download link serves).
    public static func contentType(of key: BlobKey) -> String {
        let ext = key.value.split(separator: ".").last.map(String.init) ?? ""
        return ContentSniffer.extensions.first { $0.value == ext }?.key ?? ContentSniffer.octetStream
    }
}

/// Content types recognized from the first bytes of a file.
public enum ContentSniffer {
    public static let octetStream = "application/octet-stream"

    /// How many leading bytes `contentType(of:)` looks at.
    public static let prefixLength = 8

    static let extensions = [
        "image/jpeg": "jpg", "image/png": "png", "image/gif": "gif", "application/pdf": "pdf", "application/zip": "zip",
        "application/gzip": "gz",
    ]

    public static func contentType(of prefix: some Collection<UInt8>) -> String {
        let bytes = Array(prefix.prefix(prefixLength))
        func starts(_ magic: [UInt8]) -> Bool { bytes.starts(with: magic) }
        if starts([0xFF, 0xD8, 0xFF]) { return "image/jpeg" }
        if starts([0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A]) { return "image/png" }
        if starts(Array("GIF87a".utf8)) || starts(Array("GIF89a".utf8)) { return "image/gif" }
        if starts(Array("%PDF-".utf8)) { return "application/pdf" }
        if starts([0x50, 0x4B, 0x03, 0x04]) || starts([0x50, 0x4B, 0x05, 0x06]) { return "application/zip" }
        if starts([0x1F, 0x8B]) { return "application/gzip" }
        return octetStream
    }
}

/// A stored file: one owner's record of a blob, with the name and metadata the owner gave it.
public struct FileRecord: Sendable, Hashable {
    public var id: ULID
    public var key: BlobKey
    public var size: Int64
    public var contentType: String
    public var filename: String
    /// The Firebase uid of the uploader.
    public var ownerID: String
    public var metadata: [String: String]
    public var createdAt: UnixTime

    public init(
        id: ULID, key: BlobKey, size: Int64, contentType: String, filename: String, ownerID: String,
        metadata: [String: String], createdAt: UnixTime
    ) {
        self.id = id
        self.key = key
        self.size = size
        self.contentType = contentType
        self.filename = filename
        self.ownerID = ownerID
        self.metadata = metadata
        self.createdAt = createdAt
    }
}

/// What an uploader says about a file before its bytes, validated.
public struct FileHeader: Sendable, Hashable {
    public var filename: String
    /// Empty: detect from the first bytes.
    public var contentType: String
    public var metadata: [String: String]
    public var expectedSize: Int64?
    public var expectedHash: ContentHash?

    public static let maximumMetadataEntries = 32
    public static let maximumMetadataBytes = 8192

    public init(
        filename: String, contentType: String, metadata: [String: String], expectedSize: Int64?, expectedSHA256: String
    ) throws(DomainError) {
        let name = filename.trimmingASCIIWhitespace()
        guard !name.isEmpty else { throw .invalid("header.filename", "is required") }
        guard name.utf8.count <= 255 else { throw .invalid("header.filename", "is longer than 255 bytes") }
        guard !name.contains("/"), !name.contains("\\"), name != ".", name != "..", !name.containsControlCharacter else {
            throw .invalid("header.filename", "must be a plain file name (no slashes or control characters)")
        }
        guard contentType.utf8.count <= 128, !contentType.containsControlCharacter,
            contentType.isEmpty || contentType.split(separator: "/", omittingEmptySubsequences: false).count == 2
        else { throw .invalid("header.content_type", "must be empty or a media type like image/png") }
        guard metadata.count <= Self.maximumMetadataEntries else {
            throw .invalid("header.metadata", "has more than \(Self.maximumMetadataEntries) entries")
        }
        let total = metadata.reduce(0) { $0 + $1.key.utf8.count + $1.value.utf8.count }
        guard total <= Self.maximumMetadataBytes else {
            throw .invalid("header.metadata", "is larger than \(Self.maximumMetadataBytes) bytes in all")
        }
        guard metadata.keys.allSatisfy({ (1...128).contains($0.utf8.count) && !$0.containsControlCharacter }) else {
            throw .invalid("header.metadata", "keys must be 1 to 128 bytes without control characters")
        }
        if let expectedSize, expectedSize < 0 { throw .invalid("header.expected_size", "must not be negative") }
        if expectedSHA256.isEmpty {
            expectedHash = nil
        } else {
            guard let hash = ContentHash(hex: expectedSHA256) else {
                throw .invalid("header.expected_sha256", "must be 64 hex digits")
            }
            expectedHash = hash
        }
        self.filename = name
        self.contentType = contentType.lowercased()
        self.metadata = metadata
        self.expectedSize = expectedSize
    }
}
