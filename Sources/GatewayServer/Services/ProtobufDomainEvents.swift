import GatewayApplication
import GatewayProtos

/// Domain events as `gateway.common.v1` protobuf payloads, with the content type naming the message.
public struct ProtobufDomainEvents: DomainEventEncoder {
    public init() {}

    public func encode(_ event: DomainEvent) throws -> NewEvent {
        let (name, payload): (String, [UInt8])
        switch event {
        case .userCreated(let user):
            var message = Gateway_Common_V1_UserCreated()
            message.userId = user.id.description
            message.email = user.email.value
            message.firebaseUid = user.firebaseUID
            (name, payload) = (Gateway_Common_V1_UserCreated.protoMessageName, try message.serializedBytes())
        case .userUpdated(let user, let changed):
            var message = Gateway_Common_V1_UserUpdated()
            message.userId = user.id.description
            message.changedFields = changed.map(\.rawValue)
            message.version = user.version
            (name, payload) = (Gateway_Common_V1_UserUpdated.protoMessageName, try message.serializedBytes())
        case .userDeleted(let user):
            var message = Gateway_Common_V1_UserDeleted()
            message.userId = user.id.description
            (name, payload) = (Gateway_Common_V1_UserDeleted.protoMessageName, try message.serializedBytes())
        case .fileUploaded(let file, let deduplicated):
            var message = Gateway_Common_V1_FileUploaded()
            message.fileId = file.id.description
            message.ownerId = file.ownerID
            message.key = file.key.value
            message.sha256 = file.key.hash.hex
            message.size = file.size
            message.contentType = file.contentType
            message.deduplicated = deduplicated
            (name, payload) = (Gateway_Common_V1_FileUploaded.protoMessageName, try message.serializedBytes())
        case .fileDeleted(let file):
            var message = Gateway_Common_V1_FileDeleted()
            message.fileId = file.id.description
            message.ownerId = file.ownerID
            message.key = file.key.value
            (name, payload) = (Gateway_Common_V1_FileDeleted.protoMessageName, try message.serializedBytes())
        }
        return try NewEvent(
            type: event.type, aggregateID: event.aggregateID, payload: payload,
            contentType: "application/x-protobuf; messageType=\(name)", reservedTypeAllowed: true
        )
    }
}
