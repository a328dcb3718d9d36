/// One figure of `vfiokit bench`: a value, and its ratio against a baseline measured in the same run.
public struct BenchResult: Encodable, Sendable {
    public let name: String
    public let value: Double
    public let unit: String
    public let ratio: Double?
    public let baseline: Double?
    /// Where the baseline is not in `unit` (a scaling ratio's baseline is a time).
    public var baselineUnit: String? = nil
    public let note: String

    /// `value` against `baseline`, both in `unit` and measured in the same run: ratio = value / baseline.
    public static func against(_ name: String, _ value: Double, _ unit: String, baseline: Double, note: String) -> BenchResult {
        BenchResult(name: name, value: value, unit: unit, ratio: value / baseline, baseline: baseline, note: note)
    }

    /// How a time grows with size: `large` / `small` (the baseline, in `unit`), no ratio of its own.
    public static func scaling(_ name: String, large: Double, small: Double, unit: String, note: String) -> BenchResult {
        BenchResult(name: name, value: large / small, unit: "x", ratio: nil, baseline: small, baselineUnit: unit, note: note)
    }
}
