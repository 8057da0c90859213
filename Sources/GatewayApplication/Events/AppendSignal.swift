import Synchronization

/// The highest sequence number appended so far, and a way to wait for a higher one. Stores call
/// `appended(through:)` after each commit; subscribers wait here between reads instead of polling.
public final class AppendSignal: Sendable {
    private struct State {
        var last: Int64 = 0
        var nextWaiter = 0
        var waiters: [Int: (after: Int64, continuation: CheckedContinuation<Void, Never>)] = [:]
    }

    private let state = Mutex(State())

    public init() {}

    /// Records that events up to `sequence` are committed and wakes the waiters it concerns.
    public func appended(through sequence: Int64) {
        let woken = state.withLock { state -> [CheckedContinuation<Void, Never>] in
            guard sequence > state.last else { return [] }
            state.last = sequence
            let ready = state.waiters.filter { $0.value.after < sequence }
            for id in ready.keys { state.waiters[id] = nil }
            return ready.values.map(\.continuation)
        }
        for continuation in woken { continuation.resume() }
    }

    /// Whether anyone waits: a store that learns of appends by polling a shared log polls only then.
    public var hasWaiters: Bool { state.withLock { !$0.waiters.isEmpty } }

    /// The highest sequence number signalled so far.
    public var lastSignalled: Int64 { state.withLock { $0.last } }

    /// Returns once something above `sequence` has been appended, `timeout` has passed, or the task is
    /// cancelled; says which (true: appended).
    @discardableResult
    public func wait(beyond sequence: Int64, timeout: Duration) async -> Bool {
        await withTaskGroup(of: Bool.self) { group in
            group.addTask { await self.wait(beyond: sequence); return !Task.isCancelled }
            group.addTask { try? await Task.sleep(for: timeout); return false }
            let first = await group.next() ?? false
            group.cancelAll()
            return first
        }
    }

    private func wait(beyond sequence: Int64) async {
        let id = state.withLock { state -> Int in
            state.nextWaiter += 1
            return state.nextWaiter
        }
        await withTaskCancellationHandler {
            await withCheckedContinuation { continuation in
                let resumeNow = state.withLock { state -> Bool in
                    if state.last > sequence || Task.isCancelled { return true }
                    state.waiters[id] = (sequence, continuation)
                    return false
                }
                if resumeNow { continuation.resume() }
            }
        } onCancel: {
            let continuation = state.withLock { $0.waiters.removeValue(forKey: id)?.continuation }
            continuation?.resume()
        }
    }
}
