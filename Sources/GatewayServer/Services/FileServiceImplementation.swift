import GatewayApplication
import GatewayProtos
import RPCCore
import StandardProtos

/// `gateway.file.v1.FileService` over the ``FileLibrary`` use cases.
public struct FileServiceImplementation: Gateway_File_V1_FileService.ServiceProtocol {
    private let library: FileLibrary

    public init(library: FileLibrary) {
        self.library = library
    }

    public func uploadFile(_ requests: RPCAsyncSequence<Gateway_File_V1_UploadFileRequest>, context: ServerContext) async throws -> Gateway_File_V1_FileInfo {
        let messages = UploadMessages(requests.makeAsyncIterator())
        guard case .header(let header)? = try await messages.next()?.data else {
            throw DomainError.invalid("header", "the first message must be the upload header")
        }
        let chunks = BlobChunks {
            guard let message = try await messages.next() else { return nil }
            guard case .chunk(let bytes)? = message.data else {
                throw DomainError.invalid("chunk", "every message after the header must be a chunk")
            }
            return bytes
        }
        let (file, deduplicated) = try await library.upload(
            try FileHeader(
                filename: header.filename, contentType: header.contentType, metadata: header.metadata,
                expectedSize: header.expectedSize, expectedSHA256: header.expectedSha256
            ),
            chunks: chunks, caller: context.caller()
        )
        return Gateway_File_V1_FileInfo(file, deduplicated: deduplicated)
    }

    public func downloadFile(
        _ request: Gateway_File_V1_DownloadFileRequest, responses: RPCWriter<Gateway_File_V1_DownloadFileResponse>, context: ServerContext
    ) async throws {
        let (file, chunks) = try await library.download(
            id: request.id, offset: request.offset, length: request.length, caller: context.caller()
        )
        var first = Gateway_File_V1_DownloadFileResponse()
        first.data = .info(Gateway_File_V1_FileInfo(file, deduplicated: false))
        try await responses.write(first)
        for try await chunk in chunks {
            var message = Gateway_File_V1_DownloadFileResponse()
            message.data = .chunk(chunk)
            try await responses.write(message)
        }
    }

    public func getFileInfo(_ request: Gateway_File_V1_GetFileInfoRequest, context: ServerContext) async throws -> Gateway_File_V1_FileInfo {
        Gateway_File_V1_FileInfo(try await library.info(id: request.id, caller: context.caller()), deduplicated: false)
    }

    public func listFiles(_ request: Gateway_File_V1_ListFilesRequest, context: ServerContext) async throws -> Gateway_File_V1_ListFilesResponse {
        let page = try await library.list(pageSize: request.pageSize, pageToken: request.pageToken, caller: context.caller())
        var response = Gateway_File_V1_ListFilesResponse()
        response.files = page.items.map { Gateway_File_V1_FileInfo($0, deduplicated: false) }
        response.nextPageToken = page.nextPageToken ?? ""
        return response
    }

    public func deleteFile(_ request: Gateway_File_V1_DeleteFileRequest, context: ServerContext) async throws -> Google_Protobuf_Empty {
        try await library.delete(id: request.id, caller: context.caller())
        return Google_Protobuf_Empty()
    }

    public func getDownloadUrl(_ request: Gateway_File_V1_GetDownloadUrlRequest, context: ServerContext) async throws -> Gateway_File_V1_GetDownloadUrlResponse {
        var ttlSeconds: Int64 = 0
        if let ttl = request.ttl {
            guard ttl.seconds >= 0, ttl.nanos >= 0 else { throw DomainError.invalid("ttl", "must not be negative") }
            ttlSeconds = ttl.seconds
        }
        let (link, expiresAt) = try await library.downloadLink(id: request.id, ttlSeconds: ttlSeconds, caller: context.caller())
        var response = Gateway_File_V1_GetDownloadUrlResponse()
        switch link {
        case .gatewayPath(let path):
            // Served by this listener: the authority the caller reached us on is the one to use.
            response.url = "http://\(context.authority ?? "127.0.0.1")\(path)"
        case .url(let url):
            response.url = url
        }
        response.expiresAt = Google_Protobuf_Timestamp(expiresAt)
        return response
    }
}

/// The upload's messages, read one at a time by the header check and then by the chunk sequence.
private final class UploadMessages: @unchecked Sendable {
    // @unchecked: used by one task at a time (the handler's), first for the header, then for the chunks.
    private var iterator: RPCAsyncSequence<Gateway_File_V1_UploadFileRequest>.AsyncIterator

    init(_ iterator: RPCAsyncSequence<Gateway_File_V1_UploadFileRequest>.AsyncIterator) {
        self.iterator = iterator
    }

    func next() async throws -> Gateway_File_V1_UploadFileRequest? {
        try await iterator.next()
    }
}

extension Gateway_File_V1_FileInfo {
    init(_ file: FileRecord, deduplicated: Bool) {
        self.init()
        id = file.id.description
        key = file.key.value
        sha256 = file.key.hash.hex
        size = file.size
        contentType = file.contentType
        filename = file.filename
        ownerId = file.ownerID
        metadata = file.metadata
        createdAt = Google_Protobuf_Timestamp(file.createdAt)
        self.deduplicated = deduplicated
    }
}
