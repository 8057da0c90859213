import GatewayApplication
import Logging
import OpenSSLCrypto

/// Everything the gateway keeps in AWS, built from one set of settings: the DynamoDB table (users, sessions,
/// file records, blob references, the event log and the outbox cursors), the S3 bucket (blobs) and the SNS
/// topic (event fan-out). Every gateway pointed at the same table and bucket shares one state.
public final class AWSBackend: Sendable {
    public struct Settings: Sendable, Equatable {
        public var region = "us-east-1"
        /// One endpoint for every service (any DynamoDB/S3/SNS-compatible server); nil: AWS's.
        public var endpointURL: String?
        public var dynamoDBEndpointURL: String?
        public var s3EndpointURL: String?
        public var snsEndpointURL: String?
        public var stsEndpointURL: String?
        public var table = "gateway"
        public var bucket: String?
        public var topicARN: String?
        /// One attempt of an AWS request, connect included.
        public var timeoutSeconds = 10
        /// Where uploads are spooled before they go to S3.
        public var spoolDirectory = "/tmp"

        public init() {}

        func endpoint(_ service: String, _ override: String?) -> AWSEndpoint {
            AWSEndpoint(service: service, region: region, endpointURL: override ?? endpointURL)
        }
    }

    public let settings: Settings
    public let users: DynamoDBUserStore
    public let events: DynamoDBEventStore
    public let files: DynamoDBFileStore
    public let outboxCursors: DynamoDBOutboxCursors
    public let table: DynamoDBTable
    public let blobs: S3BlobStore?
    private let credentials: any AWSCredentialProvider

    public init(
        settings: Settings, credentials: any AWSCredentialProvider, http: any HTTPClient, clock: any WallClock,
        budget: RetryBudget = RetryBudget(), logger: Logger
    ) {
        self.settings = settings
        self.credentials = credentials
        var dynamoSettings = AWSClient.Settings.defaults
        dynamoSettings.retry = .dynamoDB
        dynamoSettings.timeout = .seconds(settings.timeoutSeconds)
        let dynamo = DynamoDB(
            client: AWSClient(
                endpoint: settings.endpoint("dynamodb", settings.dynamoDBEndpointURL), http: http, credentials: credentials,
                clock: clock, budget: budget, settings: dynamoSettings, logger: logger
            ),
            table: settings.table
        )
        events = DynamoDBEventStore(db: dynamo, pollInterval: .milliseconds(200))
        users = DynamoDBUserStore(db: dynamo, events: events)
        files = DynamoDBFileStore(db: dynamo, events: events, clock: clock)
        outboxCursors = DynamoDBOutboxCursors(db: dynamo, clock: clock)
        table = DynamoDBTable(db: dynamo)
        blobs = settings.bucket.map { bucket in
            var s3Settings = AWSClient.Settings.defaults
            s3Settings.timeout = .seconds(settings.timeoutSeconds)
            // A custom endpoint is addressed path-style; AWS's own virtual-hosted (`<bucket>.s3.<region>…`).
            let custom = settings.s3EndpointURL ?? settings.endpointURL
            let endpoint = AWSEndpoint(service: "s3", region: settings.region, endpointURL: custom ?? "https://\(bucket).s3.\(settings.region).amazonaws.com")
            var store = S3BlobStore.Settings(bucket: bucket)
            store.pathStyle = custom != nil
            store.spoolDirectory = settings.spoolDirectory
            return S3BlobStore(
                client: AWSClient(endpoint: endpoint, http: http, credentials: credentials, clock: clock, budget: budget, settings: s3Settings, logger: logger),
                settings: store
            )
        }
    }

    /// An SNS publisher for `topicARN` (also usable with the embedded backend).
    public static func snsPublisher(
        topicARN: String, settings: Settings, credentials: any AWSCredentialProvider, http: any HTTPClient, clock: any WallClock,
        budget: RetryBudget = RetryBudget(), logger: Logger
    ) -> SNSEventPublisher {
        var clientSettings = AWSClient.Settings.defaults
        clientSettings.timeout = .seconds(settings.timeoutSeconds)
        return SNSEventPublisher(
            client: AWSClient(
                endpoint: settings.endpoint("sns", settings.snsEndpointURL), http: http, credentials: credentials, clock: clock,
                budget: budget, settings: clientSettings, logger: logger
            ),
            topicARN: topicARN
        )
    }

    /// Checks, before serving, that the credentials resolve and the table and bucket exist: a ``Problem`` that
    /// names the missing piece and the fix otherwise.
    public func check() async throws {
        do {
            _ = try await credentials.credentials()
        } catch {
            throw Problem("AWS credentials: \(error)")
        }
        try await problems {
            try await table.check()
            try await blobs?.check()
        }
    }

    /// What `migrate` made.
    public struct Migration: Sendable {
        public var createdTable: Bool
        public var createdBucket: Bool
    }

    /// Creates the table (and its index) when missing and waits until they are active, makes the shared
    /// secret, and creates the bucket when missing.
    public func migrate() async throws -> Migration {
        try await problems {
            let table = try await table.create()
            _ = try await sharedSecret()
            let bucket = try await blobs?.createBucket() ?? false
            return Migration(createdTable: table, createdBucket: bucket)
        }
    }

    /// 32 random bytes stored in the table, made by the first gateway that asks: the key page tokens are
    /// sealed with, the same on every gateway sharing the table (a page token from one works on another).
    public func sharedSecret() async throws -> [UInt8] {
        try await problems {
            let db = table.db
            if let stored = try await db.get(TableKeys.secret)?["key"]?.bytes, stored.count == 32 { return stored }
            let fresh = try Digest.randomBytes(32)
            do {
                try await db.update(TableKeys.secret, Expression(
                    condition: "attribute_not_exists(pk)", update: "SET #key = :key", names: ["#key": "key"], values: [":key": .b(fresh)]
                ))
                return fresh
            } catch is ConditionFailed {
                // Another gateway made it first: use theirs.
                guard let stored = try await db.get(TableKeys.secret)?["key"]?.bytes, stored.count == 32 else {
                    throw Problem("the shared secret in table \(settings.table) is damaged")
                }
                return stored
            }
        }
    }

    /// Stops watching the event log.
    public func close() {
        events.close()
    }

    /// A reason the backend cannot be used, phrased for the operator.
    public struct Problem: Error, CustomStringConvertible {
        public var description: String
        public init(_ description: String) { self.description = description }
    }

    private func problems<T>(_ body: () async throws -> T) async throws -> T {
        do {
            return try await body()
        } catch let error as AWSError {
            if error.isAuthenticationFailure {
                throw Problem("AWS refused the gateway's credentials (\(error.service) \(error.code)): check AWS_ACCESS_KEY_ID/AWS_PROFILE and the secret")
            }
            throw Problem("AWS \(error.service) is not usable: \(error)")
        }
    }
}
