import EmbeddedAdapters
import Foundation
import GatewayApplication

extension GatewayStorage {
    /// The embedded default: one SQLite database (`gateway.sqlite`, WAL) for records, the event log and the
    /// outbox cursors, content-addressed blobs under `blobs/`, and the secret in `secret.key`, all in the data
    /// directory.
    public static func embedded(in dataDirectory: URL, clock: any WallClock) async throws -> GatewayStorage {
        try FileManager.default.createDirectory(at: dataDirectory, withIntermediateDirectories: true)
        let secret = try SecretKeyFile.loadOrCreate(at: dataDirectory.appendingPathComponent("secret.key"))
        let records = try await SQLiteRecords.open(path: dataDirectory.appendingPathComponent("gateway.sqlite").path)
        let blobs = try await LocalBlobStore.open(directory: dataDirectory.appendingPathComponent("blobs").path)
        return GatewayStorage(
            users: records.users, sessions: records.users, events: records.events, files: records.files, blobs: blobs,
            outboxCursors: SQLiteOutboxCursors(database: records.database, clock: clock), masterSecret: secret.masterKey,
            close: {
                try await records.close()
                try await blobs.close()
            }
        )
    }
}
