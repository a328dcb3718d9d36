import ArgumentParser
import Foundation
import Benchmarks

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
        help: "Run only these suites (grouping, page-table, container, iommufd, device, preload, limits); default: all but limits, which fills a container with a million entries and measures memory, and always runs first.")
    var suite: [String] = []

    @Flag(help: "Print JSON.")
    var json = false

    func validate() throws {
        guard functions >= 1 else { throw ValidationError("--functions \(functions): the generated topology needs at least one function") }
        guard repetitions >= 1 else { throw ValidationError("--repetitions \(repetitions): at least one") }
        let known = BenchmarkSuite.allCases.map(\.rawValue)
        for name in suite where BenchmarkSuite(rawValue: name) == nil {
            throw ValidationError("unknown suite \"\(name)\" (known: \(known.joined(separator: ", ")))")
        }
    }

    func run() throws {
        let chosen = suite.isEmpty ? BenchmarkSuite.defaults : BenchmarkSuite.allCases.filter { suite.contains($0.rawValue) }
        var results: [BenchResult] = []
        for suite in BenchmarkSuite.allCases where chosen.contains(suite) {
            results += try suite.run(functions: functions, repetitions: repetitions)
        }
        if json { return try printJSON(["results": results]) }
        for result in results {
            let ratio = result.ratio.map { String(format: "  ratio %.3f", $0) } ?? ""
            let baseline = result.baseline.map { String(format: "  baseline %.3f %@", $0, result.baselineUnit ?? result.unit) } ?? ""
            print(String(format: "%-20@ %10.3f %@", result.name, result.value, result.unit) + ratio + baseline)
            print("    \(result.note)")
        }
    }
}
