import Synchronization

/// Wall-clock time, injected so that time-dependent rules are testable.
public protocol WallClock: Sendable {
    /// Seconds since 1970-01-01T00:00:00Z.
    func now() -> UnixTime
}

/// A point in UTC time: seconds and nanoseconds since the Unix epoch.
public struct UnixTime: Sendable, Hashable, Comparable {
    public var seconds: Int64
    public var nanoseconds: Int32

    public init(seconds: Int64, nanoseconds: Int32 = 0) {
        self.seconds = seconds
        self.nanoseconds = nanoseconds
    }

    public static func < (a: UnixTime, b: UnixTime) -> Bool {
        (a.seconds, a.nanoseconds) < (b.seconds, b.nanoseconds)
    }

    public func adding(seconds delta: Int64) -> UnixTime {
        UnixTime(seconds: seconds + delta, nanoseconds: nanoseconds)
    }
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
