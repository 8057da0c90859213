import Synchronization

/// Makes identifiers: injected so tests can have predictable ones.
public protocol IDGenerator: Sendable {
    /// A new ULID, greater than every ULID this generator made before.
    func ulid() -> ULID
    /// A random (version 4) UUID in its 36-character text form.
    func uuid() -> String
}

/// ULIDs from a wall clock and a random source, monotonic within a millisecond (and across a clock that
/// steps back): when the time has not moved past the last ULID's, the last one plus one is used.
public final class MonotonicIDGenerator<Random: RandomNumberGenerator & Sendable>: IDGenerator {
    private struct State {
        var last: ULID?
        var random: Random
    }

    private let clock: any WallClock
    private let state: Mutex<State>

    public init(clock: any WallClock, random: Random) {
        self.clock = clock
        self.state = Mutex(State(last: nil, random: random))
    }

    public func ulid() -> ULID {
        let now = UInt64(max(0, clock.now().milliseconds))
        return state.withLock { state in
            let next: ULID
            if let last = state.last, now <= last.milliseconds, let successor = last.successor {
                next = successor
            } else {
                next = ULID(
                    milliseconds: now, randomHigh: UInt16.random(in: .min ... .max, using: &state.random),
                    randomLow: UInt64.random(in: .min ... .max, using: &state.random)
                )
            }
            state.last = next
            return next
        }
    }

    public func uuid() -> String {
        var bytes = state.withLock { state in
            (0..<16).map { _ in UInt8.random(in: .min ... .max, using: &state.random) }
        }
        bytes[6] = bytes[6] & 0x0F | 0x40  // version 4
        bytes[8] = bytes[8] & 0x3F | 0x80  // RFC 4122 variant
        let hex = bytes.map { String($0, radix: 16).leftPadded(to: 2) }
        return [hex[0..<4], hex[4..<6], hex[6..<8], hex[8..<10], hex[10..<16]].map { $0.joined() }.joined(separator: "-")
    }
}

extension MonotonicIDGenerator where Random == SystemRandomNumberGenerator {
    /// ULIDs and UUIDs from the system's cryptographic random source.
    public convenience init(clock: any WallClock) {
        self.init(clock: clock, random: SystemRandomNumberGenerator())
    }
}

/// A small deterministic random source (SplitMix64), for tests that want repeatable ids.
public struct SeededRandomNumberGenerator: RandomNumberGenerator, Sendable {
    private var state: UInt64

    public init(seed: UInt64) { state = seed }

    public mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

extension String {
    fileprivate func leftPadded(to width: Int) -> String {
        count >= width ? self : String(repeating: "0", count: width - count) + self
    }
}
