import NIOCore

/// Runs tasks on one NIO event loop: a task that prefers it (`Task(executorPreference:)`) and the I/O it causes
/// stay on one thread, instead of waking an event loop thread and a thread of Swift's global executor for every
/// message. The server runs each call's handler on its connection's loop this way, and the load generator its
/// workers. What runs there must not block: blocking work belongs on threads of its own (as the storage
/// adapters' pools do).
public final class EventLoopExecutor: TaskExecutor, @unchecked Sendable {
    // An EventLoop is thread-safe; the class holds nothing else.
    public let loop: any EventLoop

    public init(_ loop: any EventLoop) {
        self.loop = loop
    }

    public func enqueue(_ job: consuming ExecutorJob) {
        let job = UnownedJob(job)
        let executor = asUnownedTaskExecutor()
        loop.execute { job.runSynchronously(on: executor) }
    }
}
