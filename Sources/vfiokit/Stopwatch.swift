/// Wall-clock measurement for `vfiokit bench`: the median of repeated runs.
enum Stopwatch {
    /// Median wall time of `body` in milliseconds over `repetitions` runs.
    static func medianMilliseconds(repetitions: Int, _ body: () throws -> Void) rethrows -> Double {
        var samples: [Double] = []
        for _ in 0..<max(repetitions, 1) {
            let start = ContinuousClock.now
            try body()
            let elapsed = ContinuousClock.now - start
            samples.append(Double(elapsed.components.seconds) * 1000 + Double(elapsed.components.attoseconds) / 1e15)
        }
        return samples.sorted()[samples.count / 2]
    }
}
