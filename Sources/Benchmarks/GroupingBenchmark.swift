import Foundation
import PCIBus

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
            .scaling(
                "grouping-scaling", large: ours, small: oursSmall, unit: "ms",
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
        guard !grouping.groups.isEmpty else { throw BenchmarkError("the generated topology formed no groups") }
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
