import ArgumentParser
import Foundation
import PCIBus

/// `vfiokit bench`: performance figures, each against a baseline measured in the same run.
struct BenchCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "bench",
        abstract: "Measure performance against same-run baselines (build with -c release for real figures).")

    @Option(help: "Functions in the large generated topology.")
    var functions = 10_000

    @Option(help: "Repetitions per measurement (the median is reported).")
    var repetitions = 5

    @Option(
        help: "Run only these suites (grouping, page-table, container, device, limits); default: all but limits, which fills a container with a million entries and measures memory, and always runs first.")
    var suite: [String] = []

    @Flag(help: "Print JSON.")
    var json = false

    func validate() throws {
        let known = ["grouping", "page-table", "container", "device", "limits"]
        for name in suite where !known.contains(name) {
            throw ValidationError("unknown suite \"\(name)\" (known: \(known.joined(separator: ", ")))")
        }
    }

    func run() throws {
        let chosen = { (name: String) in suite.contains(name) || (suite.isEmpty && name != "limits") }
        var results: [BenchResult] = []
        // First: its memory figures are the growth of a heap nothing has freed into yet.
        if chosen("limits") { results += try LimitsBenchmark(repetitions: repetitions).run() }
        if chosen("grouping") { results += try GroupingBenchmark(functions: functions, repetitions: repetitions).run() }
        if chosen("page-table") { results += try PageTableBenchmark(repetitions: repetitions).run() }
        if chosen("container") { results += try ContainerBenchmark(repetitions: repetitions).run() }
        if chosen("device") { results += try DeviceBenchmark(repetitions: repetitions).run() }
        if json { return try printJSON(["results": results]) }
        for result in results {
            let ratio = result.ratio.map { String(format: "  ratio %.3f", $0) } ?? ""
            let baseline = result.baseline.map { String(format: "  baseline %.3f %@", $0, result.baselineUnit ?? result.unit) } ?? ""
            print(String(format: "%-20@ %10.3f %@", result.name, result.value, result.unit) + ratio + baseline)
            print("    \(result.note)")
        }
    }
}

struct BenchResult: Encodable {
    let name: String
    let value: Double
    let unit: String
    let ratio: Double?
    let baseline: Double?
    /// Where the baseline is not in `unit` (a scaling ratio's baseline is a time).
    var baselineUnit: String? = nil
    let note: String
}

/// `grouping-10k`: load a generated dump through libpci and form its groups, against
/// `lspci -F` on the same file; `grouping-scaling`: time at N functions over time at N/10.
struct GroupingBenchmark {
    let functions: Int
    let repetitions: Int

    func run() throws -> [BenchResult] {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("vfiokit-bench-\(getpid())")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let small = max(functions / 10, 1)
        let smallPath = try write(count: small, to: directory)
        let largePath = try write(count: functions, to: directory)
        let ours = try median { try group(largePath) }
        let oursSmall = try median { try group(smallPath) }
        let lspci = try findLspci().map { tool in try median { try runTool(tool, largePath) } }
        let label = functions % 1000 == 0 ? "\(functions / 1000)k" : "\(functions)"
        return [
            BenchResult(
                name: "grouping-\(label)", value: ours, unit: "ms", ratio: lspci.map { ours / $0 }, baseline: lspci,
                note: "load a generated \(functions)-function lspci -xxxx dump through libpci and group it; baseline: lspci -F on the same file"
                    + (lspci == nil ? " (lspci not found: no baseline)" : "")),
            BenchResult(
                name: "grouping-scaling", value: ours / oursSmall, unit: "x", ratio: nil, baseline: oursSmall, baselineUnit: "ms",
                note: "time at \(functions) functions / time at \(small) (baseline, ms); linear would be \(functions / small)x"),
        ]
    }

    private func write(count: Int, to directory: URL) throws -> String {
        let path = directory.appendingPathComponent("synthetic-\(count).lspci-xxxx.txt").path
        try DumpWriter.render(SyntheticTopology.functions(count: count)).write(toFile: path, atomically: false, encoding: .utf8)
        return path
    }

    private func group(_ path: String) throws {
        let topology = try PCITopology.load(.dump(path: path), options: .init(lookUpNames: false))
        let grouping = IsolationGrouping(topology: topology)
        guard !grouping.groups.isEmpty else { throw ExitCode.failure }
    }

    private func findLspci() -> String? {
        let paths = (ProcessInfo.processInfo.environment["PATH"] ?? "").split(separator: ":").map(String.init)
        return (paths + ["/usr/bin", "/usr/sbin", "/sbin"]).map { $0 + "/lspci" }.first {
            FileManager.default.isExecutableFile(atPath: $0)
        }
    }

    private func runTool(_ tool: String, _ path: String) throws {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: tool)
        process.arguments = ["-F", path]
        process.standardOutput = FileHandle.nullDevice
        process.standardError = FileHandle.nullDevice
        try process.run()
        process.waitUntilExit()
    }

    private func median(_ body: () throws -> Void) throws -> Double {
        try Stopwatch.medianMilliseconds(repetitions: repetitions, body)
    }
}
