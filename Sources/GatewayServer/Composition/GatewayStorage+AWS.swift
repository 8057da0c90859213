import AWSAdapters
import Foundation
import GatewayApplication
import Logging

extension GatewayStorage {
    /// The storage `settings` choose: the embedded default, or the AWS backend (checked first; see
    /// ``aws(_:)``). `credentials` are used by the AWS backend only.
    public static func open(
        _ settings: GatewaySettings, credentials: any AWSCredentialProvider, http: any HTTPClient, clock: any WallClock, logger: Logger
    ) async throws -> GatewayStorage {
        switch settings.backend {
        case .embedded:
            return try await embedded(in: settings.dataDirectoryURL, clock: clock)
        case .aws:
            try FileManager.default.createDirectory(atPath: settings.awsBackendSettings.spoolDirectory, withIntermediateDirectories: true)
            return try await aws(AWSBackend(settings: settings.awsBackendSettings, credentials: credentials, http: http, clock: clock, logger: logger))
        }
    }

    /// The AWS backend: records, the event log and the outbox cursors in one DynamoDB table, blobs in S3 (see
    /// ``AWSBackend``). Checks first that the credentials resolve and the table and bucket exist, and stops with
    /// a message naming what is missing and how to fix it.
    public static func aws(_ backend: AWSBackend) async throws -> GatewayStorage {
        try await backend.check()
        guard let blobs = backend.blobs else { throw AWSBackend.Problem("the AWS backend needs an S3 bucket (--s3-bucket)") }
        let secret = try await backend.sharedSecret()
        return GatewayStorage(
            users: backend.users, sessions: backend.users, events: backend.events, files: backend.files, blobs: blobs,
            outboxCursors: backend.outboxCursors, masterSecret: secret, close: { backend.close() }
        )
    }
}

extension GatewaySettings {
    /// The AWS backend's settings, uploads spooled under `<data-dir>/spool`.
    public var awsBackendSettings: AWSBackend.Settings {
        var settings = aws
        settings.spoolDirectory = dataDirectoryURL.appendingPathComponent("spool").path
        return settings
    }

    /// The standard AWS credential chain over this process's environment.
    public func awsCredentials(http: any HTTPClient, clock: any WallClock) -> AWSCredentialChain {
        AWSCredentialChain(
            environment: ProcessInfo.processInfo.environment, http: http, clock: clock, region: aws.region,
            stsEndpointURL: aws.stsEndpointURL ?? aws.endpointURL
        )
    }
}

extension EventRelayService {
    /// The relay of the event log to the SNS topic `settings` name (with either backend), its topic checked
    /// first; nil when no topic is configured.
    public static func sns(
        _ settings: GatewaySettings, storage: GatewayStorage, credentials: any AWSCredentialProvider, http: any HTTPClient,
        clock: any WallClock, logger: Logger
    ) async throws -> EventRelayService? {
        guard let topic = settings.aws.topicARN else { return nil }
        let publisher = AWSBackend.snsPublisher(topicARN: topic, settings: settings.aws, credentials: credentials, http: http, clock: clock, logger: logger)
        do {
            try await publisher.check()
        } catch let error as AWSError {
            throw AWSBackend.Problem("SNS topic \(topic) cannot be used: \(error)")
        }
        let owner = "\(ProcessInfo.processInfo.hostName)-\(ProcessInfo.processInfo.processIdentifier)-\(UUID().uuidString.prefix(8))"
        return EventRelayService(store: storage.events, cursors: storage.outboxCursors, publisher: publisher, owner: owner, logger: logger)
    }
}
