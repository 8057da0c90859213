import ArgumentParser
import AWSAdapters
import CurlHTTP
import Foundation
import GatewayServer
import Logging

struct Migrate: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Create or update the storage the gateway needs, then exit (same flags as serve).",
        discussion: """
            With --backend aws: creates the DynamoDB table and its index when missing and waits until they are \
            active, makes the secret shared by every gateway on the table, and creates the S3 bucket when missing. \
            With the embedded backend: brings the SQLite schema in --data-dir up to date (serve does too).
            """
    )

    @OptionGroup var config: ConfigOptions
    @OptionGroup var server: ServerOptions
    @OptionGroup var data: DataOptions
    @OptionGroup var auth: AuthOptions
    @OptionGroup var storage: StorageOptions

    func run() async throws {
        // Log lines still buffered go out before the error that ends the command is printed (after `run`
        // returns), not in the middle of it.
        defer { LogOutput.flushStandardError() }
        let settings = try resolveConfiguration([server, data, auth, storage], config: config).settings
        LoggingSystem.bootstrap { settings.log.makeHandler(label: $0) }
        let clock = SystemWallClock()
        switch settings.backend {
        case .embedded:
            let opened = try await GatewayStorage.embedded(in: settings.dataDirectoryURL, clock: clock)
            try await opened.close()
            print("embedded storage in \(settings.dataDirectoryURL.path) is up to date")
        case .aws:
            let http = CurlHTTPClient()
            let backend = AWSBackend(
                settings: settings.awsBackendSettings, credentials: settings.awsCredentials(http: http, clock: clock), http: http,
                clock: clock, logger: Logger(label: "gateway")
            )
            defer { backend.close() }
            let made = try await backend.migrate()
            print("DynamoDB table \(settings.aws.table): \(made.createdTable ? "created" : "already there"), active")
            if let bucket = settings.aws.bucket {
                print("S3 bucket \(bucket): \(made.createdBucket ? "created" : "already there")")
            }
        }
    }
}
