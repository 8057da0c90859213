import GatewayApplication
import GatewayProtos
import RPCCore
import StandardProtos

/// `gateway.user.v1.UserService` over the ``UserAccounts`` use cases: converts messages to use-case inputs
/// and domain values back to messages. Rules and validation live in the use cases; domain errors become
/// statuses in ``DomainStatusInterceptor``.
public struct UserServiceImplementation: Gateway_User_V1_UserService.ServiceProtocol {
    private let accounts: UserAccounts

    public init(accounts: UserAccounts) {
        self.accounts = accounts
    }

    public func createUser(_ request: Gateway_User_V1_CreateUserRequest, context: ServerContext) async throws -> Gateway_User_V1_User {
        let new = UserAccounts.NewUser(
            email: request.email, displayName: request.displayName, photoURL: request.photoUrl,
            firebaseUID: request.firebaseUid.isEmpty ? nil : request.firebaseUid
        )
        return Gateway_User_V1_User(try await accounts.createUser(new, caller: context.caller()))
    }

    public func getUser(_ request: Gateway_User_V1_GetUserRequest, context: ServerContext) async throws -> Gateway_User_V1_User {
        Gateway_User_V1_User(try await accounts.user(id: request.id, caller: context.caller()))
    }

    public func getUserByEmail(_ request: Gateway_User_V1_GetUserByEmailRequest, context: ServerContext) async throws -> Gateway_User_V1_User {
        Gateway_User_V1_User(try await accounts.user(email: request.email, caller: context.caller()))
    }

    public func getCurrentUser(_ request: Gateway_User_V1_GetCurrentUserRequest, context: ServerContext) async throws -> Gateway_User_V1_User {
        Gateway_User_V1_User(try await accounts.currentUser(caller: context.caller()))
    }

    public func updateUser(_ request: Gateway_User_V1_UpdateUserRequest, context: ServerContext) async throws -> Gateway_User_V1_User {
        guard let user = request.user else { throw DomainError.invalid("user", "is required") }
        let paths = request.updateMask?.paths ?? []
        guard !paths.isEmpty else {
            throw DomainError.invalid("update_mask", "must name the fields to change (email, display_name, photo_url, is_active)")
        }
        var changes = UserAccounts.UserChanges()
        for path in paths {
            switch UserField(rawValue: path) {
            case .email: changes.email = user.email
            case .displayName: changes.displayName = user.displayName
            case .photoURL: changes.photoURL = user.photoUrl
            case .isActive: changes.isActive = user.isActive
            case nil:
                throw DomainError.invalid(
                    "update_mask", "\"\(path.prefix(64))\" is not one of email, display_name, photo_url, is_active"
                )
            }
        }
        let updated = try await accounts.updateUser(
            id: user.id, changes: changes, expectedVersion: request.expectedVersion, caller: context.caller()
        )
        return Gateway_User_V1_User(updated)
    }

    public func deleteUser(_ request: Gateway_User_V1_DeleteUserRequest, context: ServerContext) async throws -> Google_Protobuf_Empty {
        try await accounts.deleteUser(id: request.id, expectedVersion: request.expectedVersion, caller: context.caller())
        return Google_Protobuf_Empty()
    }

    public func listUsers(_ request: Gateway_User_V1_ListUsersRequest, context: ServerContext) async throws -> Gateway_User_V1_ListUsersResponse {
        let page = try await accounts.listUsers(
            pageSize: request.pageSize, pageToken: request.pageToken, activeOnly: request.activeOnly, caller: context.caller()
        )
        var response = Gateway_User_V1_ListUsersResponse()
        response.users = page.items.map(Gateway_User_V1_User.init)
        response.nextPageToken = page.nextPageToken ?? ""
        return response
    }

    public func countUsers(_ request: Gateway_User_V1_CountUsersRequest, context: ServerContext) async throws -> Gateway_User_V1_CountUsersResponse {
        var response = Gateway_User_V1_CountUsersResponse()
        response.count = try await accounts.countUsers(activeOnly: request.activeOnly, caller: context.caller())
        return response
    }

    public func createSession(_ request: Gateway_User_V1_CreateSessionRequest, context: ServerContext) async throws -> Gateway_User_V1_Session {
        var ttlSeconds: Int64 = 0
        if let ttl = request.ttl {
            guard ttl.nanos == 0 || ttl.seconds >= 0 else { throw DomainError.invalid("ttl", "must not be negative") }
            ttlSeconds = ttl.seconds + (ttl.nanos > 0 ? 1 : 0)  // round up to whole seconds
        }
        let session = try await accounts.createSession(device: request.device, ttlSeconds: ttlSeconds, caller: context.caller())
        return Gateway_User_V1_Session(session)
    }

    public func listSessions(_ request: Gateway_User_V1_ListSessionsRequest, context: ServerContext) async throws -> Gateway_User_V1_ListSessionsResponse {
        let page = try await accounts.listSessions(
            pageSize: request.pageSize, pageToken: request.pageToken, includeRevoked: request.includeRevoked,
            caller: context.caller()
        )
        var response = Gateway_User_V1_ListSessionsResponse()
        response.sessions = page.items.map(Gateway_User_V1_Session.init)
        response.nextPageToken = page.nextPageToken ?? ""
        return response
    }

    public func revokeSession(_ request: Gateway_User_V1_RevokeSessionRequest, context: ServerContext) async throws -> Gateway_User_V1_Session {
        Gateway_User_V1_Session(try await accounts.revokeSession(id: request.id, caller: context.caller()))
    }
}

extension ServerContext {
    /// The verified caller; the access policy guarantees one for every method of our services.
    func caller() throws(RPCError) -> Principal {
        guard let principal else {
            throw RPCError(code: .unauthenticated, message: "\(descriptor.method) requires a bearer token")
        }
        return principal
    }
}

extension Gateway_User_V1_User {
    init(_ user: User) {
        self.init()
        id = user.id.description
        email = user.email.value
        displayName = user.displayName.value
        photoUrl = user.photoURL.value
        firebaseUid = user.firebaseUID
        isActive = user.isActive
        version = user.version
        createdAt = Google_Protobuf_Timestamp(user.createdAt)
        updatedAt = Google_Protobuf_Timestamp(user.updatedAt)
    }
}

extension Gateway_User_V1_Session {
    init(_ session: Session) {
        self.init()
        id = session.id.description
        userId = session.userID.description
        device = session.device.value
        createdAt = Google_Protobuf_Timestamp(session.createdAt)
        expiresAt = Google_Protobuf_Timestamp(session.expiresAt)
        revoked = session.revoked
    }
}

extension Google_Protobuf_Timestamp {
    init(_ time: UnixTime) {
        self.init()
        seconds = time.seconds
        nanos = time.nanoseconds
    }
}
