import Synchronization

/// Wall-clock time, injected so that time-dependent rules are testable.
public protocol WallClock: Sendable {
    /// Seconds since 1970-01-01T00:00:00Z.
    func now() -> UnixTime
}

/// A clock that stands still until moved: for tests.
public final class FakeWallClock: WallClock {
    private let current: Mutex<UnixTime>

    public init(_ start: UnixTime) {
        current = Mutex(start)
    }

    public func now() -> UnixTime { current.withLock { $0 } }

    public func advance(seconds: Int64) {
        current.withLock { $0 = $0.adding(seconds: seconds) }
    }

    public func set(_ time: UnixTime) {
        current.withLock { $0 = time }
    }
}
