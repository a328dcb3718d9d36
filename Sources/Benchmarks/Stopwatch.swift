/// Wall-clock measurement for `vfiokit bench` and the demo.
public enum Stopwatch {
    /// Median wall time of `body` in milliseconds over `repetitions` runs.
    public static func medianMilliseconds(repetitions: Int, _ body: () throws -> Void) rethrows -> Double {
        var samples: [Double] = []
        for _ in 0..<max(repetitions, 1) {
            let start = ContinuousClock.now
            try body()
            samples.append(seconds(since: start) * 1e3)
        }
        return samples.sorted()[samples.count / 2]
    }

    /// Seconds from `start` to now.
    public static func seconds(since start: ContinuousClock.Instant) -> Double {
        let elapsed = ContinuousClock.now - start
        return Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
    }
}
