/// A key for a value interceptors attach to a ``ServerContext`` (an authenticated principal, a request id).
public protocol ContextValueKey {
    associatedtype Value: Sendable
}

/// Type-keyed values carried by a ``ServerContext`` from interceptors to handlers.
public struct ContextValues: Sendable {
    private var storage: [ObjectIdentifier: any Sendable] = [:]

    public init() {}

    public subscript<Key: ContextValueKey>(_ key: Key.Type) -> Key.Value? {
        get { storage[ObjectIdentifier(key)] as? Key.Value }
        set { storage[ObjectIdentifier(key)] = newValue }
    }
}
