import GatewayApplication

/// A sealer for tests: the payload as decimal bytes; anything else fails to open.
struct PlainSealer: TokenSealer {
    func seal(_ payload: [UInt8]) -> String { payload.map { String($0) }.joined(separator: ",") }
    func open(_ token: String) -> [UInt8]? {
        let parts = token.split(separator: ",", omittingEmptySubsequences: false).map { UInt8($0) }
        return parts.contains(nil) ? nil : parts.compactMap { $0 }
    }
}

/// Domain events as readable text, so tests can see what was recorded.
struct TextDomainEvents: DomainEventEncoder {
    func encode(_ event: DomainEvent) throws -> NewEvent {
        let detail = switch event {
        case .userCreated(let user): user.email.value
        case .userUpdated(let user, let changed): "v\(user.version) " + changed.map(\.rawValue).joined(separator: ",")
        case .userDeleted(let user): user.id.description
        case .fileUploaded(let file, let deduplicated): "\(file.key) \(deduplicated ? "deduplicated" : "new")"
        case .fileDeleted(let file): file.key.value
        }
        return try NewEvent(type: event.type, aggregateID: event.aggregateID, payload: Array(detail.utf8), reservedTypeAllowed: true)
    }
}
