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
    /// 1 ms; the schedule ends with the window.
    @Test func openLoopScheduleIsEvenAndEndsWithTheWindow() async {
        var shape = LoadShape()
        shape.connections = 2
        shape.streams = 5
        shape.rate = 1_000
        shape.warmup = .zero
        shape.duration = .milliseconds(50)
        let window = Window(shape: shape, start: monotonicNanos())
        var third = Schedule(index: 3, shape: shape, window: window)
        var starts: [UInt64] = []
        while let start = await third.next() { starts.append(start - window.start) }
        #expect(starts == [3_000_000, 13_000_000, 23_000_000, 33_000_000, 43_000_000])
    }

    @Test func closedLoopScheduleIsNowUntilTheEnd() async {
        var shape = LoadShape()
        shape.warmup = .zero
        shape.duration = .milliseconds(20)
        let window = Window(shape: shape)
        var schedule = Schedule(index: 0, shape: shape, window: window)
        #expect(!schedule.isOpenLoop)
        let first = await schedule.next()
        #expect(first != nil && first! >= window.start)
        try? await Task.sleep(for: .milliseconds(30))
        #expect(await schedule.next() == nil)
    }
}
