import Synchronization

/// Holds on blobs and deletions of blobs, within one process: what the embedded and memory file stores use to
/// keep their half of the ``FileRepository`` blob protocol (`pin`, `unpin`, `deleteBlob`). A deletion starts
/// only while nothing holds the blob, and a `pin` that arrives during a deletion waits for it to end, so an
/// upload never sees a blob exist and then loses it. Stores shared by several processes keep the same
/// protocol in the shared store instead (conditional writes).
public final class BlobHolds: Sendable {
    private struct State {
        var holds: [BlobKey: Int] = [:]
        var deleting: Set<BlobKey> = []
        var waiters: [BlobKey: [CheckedContinuation<Void, Never>]] = [:]
    }

    private let state = Mutex(State())

    public init() {}

    /// Takes a hold on `key`, after any deletion of it under way.
    public func pin(_ key: BlobKey) async {
        while true {
            let taken = state.withLock { state -> Bool in
                guard !state.deleting.contains(key) else { return false }
                state.holds[key, default: 0] += 1
                return true
            }
            if taken { return }
            await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
                let wait = state.withLock { state -> Bool in
                    guard state.deleting.contains(key) else { return false }
                    state.waiters[key, default: []].append(continuation)
                    return true
                }
                if !wait { continuation.resume() }
            }
        }
    }

    /// Gives a hold back; returns the holds left on `key`.
    @discardableResult
    public func unpin(_ key: BlobKey) -> Int {
        state.withLock { state in
            let left = max(0, state.holds[key, default: 0] - 1)
            state.holds[key] = left == 0 ? nil : left
            return left
        }
    }

    public func holds(on key: BlobKey) -> Int {
        state.withLock { $0.holds[key, default: 0] }
    }

    /// Runs `delete` when nothing holds `key` and `records()` counts no reference, with `pin`s of `key` waiting
    /// meanwhile. Returns whether it ran.
    public func deleteBlob(
        _ key: BlobKey, records: () async throws -> Int, delete: () async throws -> Void
    ) async throws -> Bool {
        let started = state.withLock { state -> Bool in
            guard state.holds[key] == nil, !state.deleting.contains(key) else { return false }
            state.deleting.insert(key)
            return true
        }
        guard started else { return false }
        defer {
            let waiters = state.withLock { state in
                state.deleting.remove(key)
                return state.waiters.removeValue(forKey: key) ?? []
            }
            for waiter in waiters { waiter.resume() }
        }
        guard try await records() == 0 else { return false }
        try await delete()
        return true
    }
}
