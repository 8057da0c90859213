import Foundation
@testable import LoadGenerator
import Testing

@Suite("load generator")
struct LoadGeneratorTests {
    /// 1 µs … 10 ms uniformly, 10 000 values: the percentiles are known to within HdrHistogram's 3 digits.
    @Test func percentilesOfAUniformDistribution() {
        var latencies = Latencies()
        for micros in 1...10_000 { latencies.record(nanoseconds: UInt64(micros) * 1_000) }
        #expect(latencies.count == 10_000)
        for (percentile, expected) in [(50.0, 5_000_000.0), (90, 9_000_000), (99, 9_900_000), (99.9, 9_990_000)] {
            let value = Double(latencies.percentile(percentile))
            #expect(abs(value - expected) / expected < 0.002, "p\(percentile) = \(value)")
        }
        #expect(abs(Double(latencies.max) - 10_000_000) / 10_000_000 < 0.001)
    }

    /// A long tail: 99% fast, 1% a thousand times slower. p99 is still fast, p99.9 is the tail.
    @Test func percentilesOfABimodalDistribution() {
        var fast = Latencies()
        var slow = Latencies()
        for _ in 0..<9_900 { fast.record(nanoseconds: 100_000) }
        for _ in 0..<100 { slow.record(nanoseconds: 100_000_000) }
        fast.add(slow)
        #expect(fast.percentile(50) / 1_000 == 100)
        #expect(fast.percentile(99) / 1_000 == 100)
        #expect(fast.percentile(99.9) / 1_000_000 == 100)
        #expect(Latencies().percentile(99) == 0 && Latencies().max == 0)
    }

    @Test func shardsMergeEverything() {
        let sharded = ShardedLatencies(shards: 4)
        for worker in 0..<10 { for value in 1...100 { sharded.record(nanoseconds: UInt64(value), worker: worker) } }
        #expect(sharded.merged().count == 1_000)
    }

    /// Open loop: 1 000/s over 10 workers is one operation every 10 ms per worker, the workers staggered by
    /// 1 ms; the schedule ends with the window. (Times are given, not slept: nothing here depends on the clock.)
    @Test func openLoopScheduleIsEvenAndEndsWithTheWindow() {
        var shape = LoadShape()
        shape.connections = 2
        shape.streams = 5
        shape.rate = 1_000
        shape.warmup = .zero
        shape.duration = .milliseconds(50)
        let window = Window(shape: shape, start: 1_000_000_000)
        var third = Schedule(index: 3, shape: shape, window: window)
        #expect(third.isOpenLoop)
        var starts: [UInt64] = []
        // A worker on time asks just before each start.
        while let start = third.next(at: starts.last.map { $0 + 1 } ?? window.start) { starts.append(start) }
        #expect(starts.map { $0 - window.start } == [3_000_000, 13_000_000, 23_000_000, 33_000_000, 43_000_000])
    }

    /// A worker that fell behind (a stalled server) catches up at once inside the window, and stops at its end:
    /// it used to work off its whole backlog after the window.
    @Test func aLateOpenLoopWorkerCatchesUpButStopsAtTheEnd() {
        var shape = LoadShape()
        shape.rate = 1_000
        shape.warmup = .zero
        shape.duration = .milliseconds(20)
        let window = Window(shape: shape, start: 1_000_000_000)
        var schedule = Schedule(index: 0, shape: shape, window: window)
        let late = window.start + 5_500_000
        #expect(schedule.next(at: late) == window.start)
        #expect(schedule.next(at: late) == window.start + 1_000_000)
        #expect(schedule.next(at: window.end) == nil)
    }

    @Test func closedLoopScheduleIsNowUntilTheEnd() {
        var shape = LoadShape()
        shape.warmup = .zero
        shape.duration = .milliseconds(20)
        let window = Window(shape: shape, start: 1_000_000_000)
        var schedule = Schedule(index: 0, shape: shape, window: window)
        #expect(!schedule.isOpenLoop)
        #expect(schedule.next(at: window.start + 7) == window.start + 7)
        #expect(schedule.next(at: window.end - 1) == window.end - 1)
        #expect(schedule.next(at: window.end) == nil)
    }

    /// A client pinned to one processor (as `taskset -c 1`) counts one processor: before, the machine's count
    /// was used, and a saturated pinned client never said it was the bottleneck.
    @Test func availableProcessorsFollowTheAffinityMask() {
        #expect(CPUUsage.allowedProcessors(inStatus: "Name:\tgateway-bench\nCpus_allowed:\t2\nCpus_allowed_list:\t1\n") == 1)
        #expect(CPUUsage.allowedProcessors(inStatus: "Cpus_allowed:\t3\n") == 2)
        #expect(CPUUsage.allowedProcessors(inStatus: "Cpus_allowed:\tffffffff,ffffffff\n") == 64)
        #expect(CPUUsage.allowedProcessors(inStatus: "Cpus_allowed:\t00000000,00000100\n") == 1)
        #expect(CPUUsage.allowedProcessors(inStatus: "Name:\tx\n") == nil)
        #expect(CPUUsage.allowedProcessors(inStatus: "Cpus_allowed:\tzz\n") == nil)
        #expect((1...ProcessInfo.processInfo.activeProcessorCount).contains(CPUUsage.availableProcessors()))
    }
}
