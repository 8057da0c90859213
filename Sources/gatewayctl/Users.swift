import ArgumentParser
import Foundation
import GatewayClient

/// The columns `--output table` shows for users and sessions.
enum Columns {
    static let users: [Column<Gateway_User_V1_User>] = [
        Column("ID") { $0.id }, Column("EMAIL") { $0.email }, Column("NAME") { $0.displayName }, Column("ACTIVE") { $0.isActive ? "yes" : "no" },
        Column("VERSION") { "\($0.version)" }, Column("FIREBASE UID") { $0.firebaseUid },
    ]
    static let sessions: [Column<Gateway_User_V1_Session>] = [
        Column("ID") { $0.id }, Column("DEVICE") { $0.device }, Column("CREATED") { $0.createdAt?.text ?? "" }, Column("EXPIRES") { $0.expiresAt?.text ?? "" },
        Column("REVOKED") { $0.revoked ? "yes" : "no" },
    ]
}

struct UserCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "user", abstract: "Users: create, read, change, delete, list and count.",
        subcommands: [Create.self, Get.self, Me.self, GetByEmail.self, Update.self, Delete.self, List.self, Count.self]
    )

    struct Create: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Create the caller's user (admins: any account's, with --firebase-uid).")
        @OptionGroup var options: GlobalOptions
        @Option var email: String
        @Option var displayName: String
        @Option var photoUrl = ""
        @Option(help: "Admins only: the Firebase account the user belongs to.") var firebaseUid = ""

        func run() async throws {
            let context = try Context(options)
            let request = Gateway_User_V1_CreateUserRequest.with {
                $0.email = email
                $0.displayName = displayName
                $0.photoUrl = photoUrl
                $0.firebaseUid = firebaseUid
            }
            try await context.show { try await $0.users.createUser(request) }
        }
    }

    struct Get: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "A user by id.")
        @OptionGroup var options: GlobalOptions
        @Argument var id: String

        func run() async throws {
            let context = try Context(options)
            try await context.show { try await $0.users.getUser(.with { $0.id = id }) }
        }
    }

    struct Me: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "The caller's own user.")
        @OptionGroup var options: GlobalOptions

        func run() async throws {
            let context = try Context(options)
            try await context.show { try await $0.users.getCurrentUser(.init()) }
        }
    }

    struct GetByEmail: AsyncParsableCommand {
        static let configuration = CommandConfiguration(commandName: "get-by-email", abstract: "A user by email (case-insensitive).")
        @OptionGroup var options: GlobalOptions
        @Argument var email: String

        func run() async throws {
            let context = try Context(options)
            try await context.show { try await $0.users.getUserByEmail(.with { $0.email = email }) }
        }
    }

    struct Update: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Change the given fields of a user.",
            discussion: "Only the fields given change. With --expected-version, only if the stored version is that one (else ABORTED)."
        )
        @OptionGroup var options: GlobalOptions
        @Argument var id: String
        @Option var email: String?
        @Option var displayName: String?
        @Option var photoUrl: String?
        @Option(help: "true or false.") var active: Bool?
        @Option var expectedVersion: Int64?

        func validate() throws {
            guard email != nil || displayName != nil || photoUrl != nil || active != nil else {
                throw ValidationError("nothing to change: give --email, --display-name, --photo-url or --active")
            }
        }

        func run() async throws {
            let context = try Context(options)
            var paths: [String] = []
            var user = Gateway_User_V1_User()
            user.id = id
            if let email { user.email = email; paths.append("email") }
            if let displayName { user.displayName = displayName; paths.append("display_name") }
            if let photoUrl { user.photoUrl = photoUrl; paths.append("photo_url") }
            if let active { user.isActive = active; paths.append("is_active") }
            let request = Gateway_User_V1_UpdateUserRequest.with {
                $0.user = user
                $0.updateMask = .with { $0.paths = paths }
                $0.expectedVersion = expectedVersion
            }
            try await context.show { try await $0.users.updateUser(request) }
        }
    }

    struct Delete: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Delete a user (and its sessions).")
        @OptionGroup var options: GlobalOptions
        @Argument var id: String
        @Option var expectedVersion: Int64?

        func run() async throws {
            let context = try Context(options)
            _ = try await context.withConnection { connection in
                try await connection.users.deleteUser(.with {
                    $0.id = id
                    $0.expectedVersion = expectedVersion
                })
            }
            if context.output == .json { Printer(format: .json).line("{}") }
        }
    }

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Users, a page at a time (admins only).")
        @OptionGroup var options: GlobalOptions
        @Option var pageSize: Int32 = 100
        @Option var pageToken = ""
        @Flag var activeOnly = false
        @Flag(help: "Follow the page tokens to the end.") var all = false

        func run() async throws {
            let context = try Context(options)
            let printer = Printer(format: context.output)
            try await context.withConnection { connection in
                var token = pageToken
                var users: [Gateway_User_V1_User] = []
                repeat {
                    let page = try await connection.users.listUsers(.with {
                        $0.pageSize = pageSize
                        $0.pageToken = token
                        $0.activeOnly = activeOnly
                    })
                    token = page.nextPageToken
                    if context.output == .table {
                        users += page.users
                    } else {
                        try printer.list(page.users, columns: Columns.users)
                    }
                } while all && !token.isEmpty
                if context.output == .table { try printer.list(users, columns: Columns.users) }
                if !all && !token.isEmpty { FileHandle.standardErrorLine("next page: --page-token \(token)") }
            }
        }
    }

    struct Count: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "How many users there are (admins only).")
        @OptionGroup var options: GlobalOptions
        @Flag var activeOnly = false

        func run() async throws {
            let context = try Context(options)
            let response = try await context.withConnection { try await $0.users.countUsers(.with { $0.activeOnly = activeOnly }) }
            if context.output == .json { try Printer(format: .json).message(response) } else { Printer(format: .text).line("\(response.count)") }
        }
    }
}

struct SessionCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "session", abstract: "The caller's sessions (signed-in devices).", subcommands: [Create.self, List.self, Revoke.self]
    )

    struct Create: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Start a session for a device.")
        @OptionGroup var options: GlobalOptions
        @Option var device: String
        @Option(help: "Lifetime in seconds (0: the server's default).") var ttl: Int64 = 0

        func run() async throws {
            let context = try Context(options)
            let request = Gateway_User_V1_CreateSessionRequest.with {
                $0.device = device
                if ttl > 0 { $0.ttl = .with { $0.seconds = ttl } }
            }
            try await context.show { try await $0.users.createSession(request) }
        }
    }

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "The caller's sessions.")
        @OptionGroup var options: GlobalOptions
        @Option var pageSize: Int32 = 100
        @Flag var includeRevoked = false
        @Flag(help: "Follow the page tokens to the end.") var all = false

        func run() async throws {
            let context = try Context(options)
            let sessions = try await context.withConnection { connection in
                var token = ""
                var sessions: [Gateway_User_V1_Session] = []
                repeat {
                    let page = try await connection.users.listSessions(.with {
                        $0.pageSize = pageSize
                        $0.pageToken = token
                        $0.includeRevoked = includeRevoked
                    })
                    sessions += page.sessions
                    token = page.nextPageToken
                } while all && !token.isEmpty
                return sessions
            }
            try Printer(format: context.output).list(sessions, columns: Columns.sessions)
        }
    }

    struct Revoke: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "End a session.")
        @OptionGroup var options: GlobalOptions
        @Argument var id: String

        func run() async throws {
            let context = try Context(options)
            try await context.show { try await $0.users.revokeSession(.with { $0.id = id }) }
        }
    }
}

extension FileHandle {
    static func standardErrorLine(_ text: String) {
        standardError.write(Data((text + "\n").utf8))
    }
}
