import ArgumentParser
#if canImport(Glibc)
import Glibc
#endif
import Foundation
import GatewayClient

@main
struct Main {
    /// Runs the command and turns its outcome into an exit code, as grpcurl does: 0 OK; 64 + the gRPC status
    /// code for an RPC error (its name and message on stderr); 2 for a usage error or bad input; 1 for a local
    /// failure (a file that is not there, no server).
    static func main() async {
        do {
            var command = try Gatewayctl.parseAsRoot()
            if var asyncCommand = command as? any AsyncParsableCommand {
                try await asyncCommand.run()
            } else {
                try command.run()
            }
            exit(0)
        } catch {
            exit(report(error))
        }
    }

    static func report(_ error: any Error) -> Int32 {
        switch error {
        case let error as RPCError:
            FileHandle.standardError.write(Data("ERROR:\n  Code: \(error.code)\n  Message: \(error.message)\n".utf8))
            return Int32(64 + error.code.rawValue)
        case let error as UsageError:
            FileHandle.standardError.write(Data("gatewayctl: \(error.message)\n".utf8))
            return 2
        case let error as LocalFailure:
            FileHandle.standardError.write(Data("gatewayctl: \(error.message)\n".utf8))
            return 1
        default:
            let code = Gatewayctl.exitCode(for: error)
            let message = Gatewayctl.fullMessage(for: error)
            if code == .success {
                if !message.isEmpty { print(message) }
                return 0
            }
            if code == .validationFailure || error is ValidationError {
                FileHandle.standardError.write(Data("\(message)\n".utf8))
                return 2
            }
            FileHandle.standardError.write(Data("gatewayctl: \(message.isEmpty ? "\(error)" : message)\n".utf8))
            return 1
        }
    }
}

/// Bad input found before any call: exit 2.
struct UsageError: Error {
    var message: String
    init(_ message: String) { self.message = message }
}

/// Something local went wrong (a file, the server cannot be reached): exit 1.
struct LocalFailure: Error {
    var message: String
    init(_ message: String) { self.message = message }
}

struct Gatewayctl: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "gatewayctl",
        abstract: "Call the gateway's users, files and events services (and any gRPC server with reflection).",
        discussion: """
            Sign in once (`gatewayctl login --local` for a local gateway, `gatewayctl login --email E --api-key K` \
            for Firebase), then call: `gatewayctl user me`, `gatewayctl file upload photo.png`, \
            `gatewayctl event subscribe --from 1`.

            Settings come from flags, then GATEWAY_SERVER / GATEWAY_TOKEN, then \
            ~/.config/gatewayctl/config.json ({"server": "host:port", "timeout": 30, "output": "json"}).

            Exit codes: 0 OK; 64 + the gRPC status code when the RPC fails (e.g. 69 NOT_FOUND, 80 \
            UNAUTHENTICATED, 78 UNAVAILABLE); 2 for a usage error or bad input (nothing is called); 1 for a local \
            failure (a file that cannot be read or written).
            """,
        subcommands: [
            Login.self, Logout.self, WhoAmI.self, UserCommand.self, SessionCommand.self, FileCommand.self, EventCommand.self,
            HealthCommand.self, ListCommand.self, DescribeCommand.self, CallCommand.self,
        ]
    )
}
