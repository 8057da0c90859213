// A small service that keeps a user's profile on the gateway: it makes sure its user exists, stores an avatar,
// announces the change as an event, and reads both back. Run it against a gateway:
//
//     GATEWAY_SERVER=127.0.0.1:50051 GATEWAY_TOKEN=$(gateway token) swift run profile-service
//
// With Firebase, use a token source that refreshes (RefreshingFirebaseToken) instead of a fixed token.
import Foundation
import GatewayClient

@main
struct ProfileService {
    static func main() async {
        do {
            try await run()
        } catch let error as RPCError {
            // What a service would log: the status, never the token.
            print("profile-service: \(error.code): \(error.message)")
            exit(1)
        } catch {
            print("profile-service: \(error)")
            exit(1)
        }
    }

    static func run() async throws {
        let environment = ProcessInfo.processInfo.environment
        let server = environment["GATEWAY_SERVER"] ?? "127.0.0.1:50051"
        guard let token = environment["GATEWAY_TOKEN"], !token.isEmpty else {
            throw Failure("set GATEWAY_TOKEN (e.g. `gateway token`)")
        }
        var options = GatewayConnection.Options()
        options.defaultTimeout = .seconds(10)
        // The HTTP/2 transport's settings: its types come with `import GatewayClient` too.
        options.transport = GRPCClientConfiguration.defaults { $0.connectTimeout = .seconds(5) }
        let gateway = try GatewayConnection.connect(to: server, token: StaticToken(token), options: options)
        do {
            try await keepProfile(gateway, email: environment["PROFILE_EMAIL"] ?? "profile-service@example.com")
        } catch {
            await gateway.close()
            throw error
        }
        await gateway.close()
    }

    static func keepProfile(_ gateway: GatewayConnection, email: String) async throws {
        // 1. The caller's user: read it, or create it on first run.
        let user: Gateway_User_V1_User
        do {
            user = try await gateway.users.getCurrentUser(.init())
        } catch let error as RPCError where error.code == .notFound {
            user = try await gateway.users.createUser(.with {
                $0.email = email
                $0.displayName = "Profile Service"
            })
        }
        print("user \(user.id) \(user.email)")

        // 2. An avatar, streamed up in chunks (a header first, then the bytes).
        let avatar = (0..<200_000).map { UInt8(truncatingIfNeeded: $0 &* 31) }
        let file = try await gateway.files.uploadFile { writer in
            try await writer.write(.with { $0.data = .header(.with { $0.filename = "avatar.bin"; $0.expectedSize = Int64(avatar.count) }) })
            for start in stride(from: 0, to: avatar.count, by: 64 * 1024) {
                try await writer.write(.with { $0.data = .chunk(Array(avatar[start..<min(avatar.count, start + 64 * 1024)])) })
            }
        }
        print("file \(file.id) \(file.size) bytes sha256 \(file.sha256)")

        // 3. The change, as an event. The idempotency key makes a retried publish (after a lost reply) harmless.
        let published = try await gateway.events.publishEvent(.with {
            $0.event = .with {
                $0.type = "profile.avatar_changed"
                $0.aggregateId = user.id
                $0.payload = Array(file.id.utf8)
                $0.idempotencyKey = "avatar-\(file.id)"
            }
        })
        print("event \(published.sequence)\(published.duplicate ? " (already published)" : "")")

        // 4. Read it all back: the event from the log, the avatar byte for byte.
        let event = try await gateway.events.subscribe(.with {
            $0.filter = .with { $0.types = ["profile.avatar_changed"]; $0.aggregateIds = [user.id] }
            $0.fromSequence = published.sequence
        }) { response in
            for try await item in response.messages {
                if case .event(let event)? = item.item { return event }
            }
            throw Failure("the subscription ended before the event arrived")
        }
        guard event.sequence == published.sequence, event.payload == Array(file.id.utf8) else {
            throw Failure("event \(event.sequence) is not the one published")
        }
        let downloaded = try await gateway.files.downloadFile(.with { $0.id = file.id }) { response in
            var bytes: [UInt8] = []
            for try await part in response.messages {
                if case .chunk(let chunk)? = part.data { bytes += chunk }
            }
            return bytes
        }
        guard downloaded == avatar else { throw Failure("the downloaded avatar differs from the one uploaded") }
        print("ok: user, avatar and event round-tripped")
    }
}

struct Failure: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}
