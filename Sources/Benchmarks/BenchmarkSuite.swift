/// The suites of `vfiokit bench`, each measuring against a baseline of the same run.
/// Declared in the order they run: `limits` first, since its memory figures are the growth of a
/// heap nothing has freed into yet.
public enum BenchmarkSuite: String, CaseIterable, Sendable {
    /// A container with a million entries: memory and time (runs only when asked for).
    case limits
    /// Grouping a generated topology against `lspci -F` (`grouping-10k`, `grouping-scaling`).
    case grouping
    /// The I/O page table's map/unmap/translate against flat baselines.
    case pageTable = "page-table"
    /// The type1 container's MAP/UNMAP_DMA and the device-side walk.
    case container
    /// iommufd's IOAS_MAP/UNMAP against type1's.
    case iommufd
    /// A virtual device's DMA against `memcpy`, and the memcpy storm.
    case device
    /// Unmodified C programs: trapped register reads, the interposed ioctl, DMA driven from C.
    case preload

    /// The suites a plain `vfiokit bench` runs: all but `limits`.
    public static let defaults: [BenchmarkSuite] = allCases.filter { $0 != .limits }

    /// Runs the suite; `functions` sizes the grouping topology.
    public func run(functions: Int, repetitions: Int) throws -> [BenchResult] {
        switch self {
        case .grouping: try GroupingBenchmark(functions: functions, repetitions: repetitions).run()
        case .pageTable: try PageTableBenchmark(repetitions: repetitions).run()
        case .container: try ContainerBenchmark(repetitions: repetitions).run()
        case .iommufd: try IOMMUFDBenchmark(repetitions: repetitions).run()
        case .device: try DeviceBenchmark(repetitions: repetitions).run()
        case .preload: try PreloadBenchmark(repetitions: repetitions).run()
        case .limits: try LimitsBenchmark(repetitions: repetitions).run()
        }
    }
}
