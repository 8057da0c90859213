import EmbeddedAdapters
import Foundation

extension GatewayStorage {
    /// The embedded default: one SQLite database (`gateway.sqlite`, WAL) for records and the event log, and
    /// content-addressed blobs under `blobs/`, in the data directory.
    public static func embedded(in dataDirectory: URL) async throws -> GatewayStorage {
        try FileManager.default.createDirectory(at: dataDirectory, withIntermediateDirectories: true)
        let records = try await SQLiteRecords.open(path: dataDirectory.appendingPathComponent("gateway.sqlite").path)
        let blobs = try await LocalBlobStore.open(directory: dataDirectory.appendingPathComponent("blobs").path)
        return GatewayStorage(
            users: records.users, sessions: records.users, events: records.events, files: records.files, blobs: blobs,
            close: {
                try await records.close()
                try await blobs.close()
            }
        )
    }
}
