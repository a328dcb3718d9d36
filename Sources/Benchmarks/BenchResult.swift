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
}
