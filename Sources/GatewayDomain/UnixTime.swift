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

extension UnixTime {
    /// Whole milliseconds since the epoch (rounded down), as ULIDs carry them.
    public var milliseconds: Int64 {
        seconds * 1000 + Int64(nanoseconds / 1_000_000)  // nanoseconds is never negative
    }

    /// Nanoseconds since the epoch; exact for 1677–2262, which is how it is stored.
    public var totalNanoseconds: Int64 { seconds &* 1_000_000_000 &+ Int64(nanoseconds) }

    public init(totalNanoseconds: Int64) {
        var seconds = totalNanoseconds / 1_000_000_000
        var nanos = totalNanoseconds % 1_000_000_000
        if nanos < 0 {
            seconds -= 1
            nanos += 1_000_000_000
        }
        self.init(seconds: seconds, nanoseconds: Int32(nanos))
    }

    public func adding(nanoseconds delta: Int64) -> UnixTime {
        UnixTime(totalNanoseconds: totalNanoseconds + delta)
    }
}
