/// Runs `operation`, cancelling it when `deadline` passes; it then throws DEADLINE_EXCEEDED.
public func withDeadline<R: Sendable>(
    _ deadline: ContinuousClock.Instant?,
    _ operation: @escaping @Sendable () async throws -> R
) async throws -> R {
    guard let deadline else { return try await operation() }
    return try await withThrowingTaskGroup(of: R?.self) { group in
        group.addTask { try await operation() }
        group.addTask {
            try await Task.sleep(until: deadline, clock: .continuous)
            return nil
        }
        defer { group.cancelAll() }
        guard let first = try await group.next(), let result = first else {
            throw RPCError(code: .deadlineExceeded, message: "deadline exceeded")
        }
        return result
    }
}
