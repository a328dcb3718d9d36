import Foundation
import FuzzTargets
import Testing

/// `Fuzz/corpus/<target>/`, relative to this file (the repository's Tests/FuzzRegressionTests).
let corpusDirectory = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
    .deletingLastPathComponent().appendingPathComponent("Fuzz/corpus")

/// Runs one corpus file through its target; a finding traps, failing the whole test run.
func replay(_ target: String, _ file: String) throws {
    let data = try Data(contentsOf: corpusDirectory.appendingPathComponent(target).appendingPathComponent(file))
    data.withUnsafeBytes { FuzzRegistry.targets[target]!($0) }
}

/// The fuzz regression tests, run one at a time: the targets share process-wide scratch memory
/// (the `dump` file, the guarded ioctl argument page) and the VFIO fd table.
@Suite(.serialized) enum FuzzRegressionTests {}

extension FuzzRegressionTests {
    /// Every seed and every minimised crash input of every fuzz target, replayed through the
    /// same entry point `vfiokit-fuzz` calls: a crash once found stays fixed.
    @Suite struct CorpusReplay {
        @Test("every corpus input of the target runs to completion", arguments: FuzzRegistry.names)
        func corpus(target: String) throws {
            let files = try FileManager.default.contentsOfDirectory(atPath: corpusDirectory.appendingPathComponent(target).path)
                .filter { !$0.hasPrefix(".") }.sorted()
            #expect(!files.isEmpty, "Fuzz/corpus/\(target) has no inputs")
            for file in files { try replay(target, file) }
        }
    }
}
