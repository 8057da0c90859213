import NIOCore

/// Runs a worker's tasks on the event loop of its connection: the calls it makes and the I/O they cause then
/// stay on one thread, instead of waking an event loop thread and a task thread for every message.
final class EventLoopExecutor: TaskExecutor, @unchecked Sendable {
    // An EventLoop is thread-safe; the class holds nothing else.
    let loop: any EventLoop

    init(_ loop: any EventLoop) {
        self.loop = loop
    }

    func enqueue(_ job: consuming ExecutorJob) {
        let job = UnownedJob(job)
        let executor = asUnownedTaskExecutor()
        loop.execute { job.runSynchronously(on: executor) }
    }
}
