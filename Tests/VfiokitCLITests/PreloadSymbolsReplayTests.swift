import Foundation
import Testing

/// The `preload-symbols` fuzz target's corpus replayed: `Fuzz/preload-symbols/harness.c` built
/// with `cc -DREPLAY` (its own main instead of libFuzzer's) and run under `vfiokit run`, so every
/// input's open/ioctl/mmap/munmap/pread/pwrite/close/dup/fork reaches the preload library's
/// interposed symbols. The harness aborts on a call answering neither a value nor -1 with an
/// errno, on a forked child that does not exit normally, and on a group left claimed after the
/// input's descriptors closed; a bad pointer crashing the library kills it with SIGSEGV.
@Suite("vfiokit run: the preload-symbols fuzz corpus")
struct PreloadSymbolsReplayTests {
    @Test("every input of Fuzz/corpus/preload-symbols runs through the interposed symbols and leaves no group claimed")
    func corpusReplays() throws {
        let corpus = CLI.packageRoot.appendingPathComponent("Fuzz/corpus/preload-symbols").path
        let inputs = try FileManager.default.contentsOfDirectory(atPath: corpus).sorted().map { corpus + "/" + $0 }
        try #require(inputs.count >= 10, "the corpus has \(inputs.count) inputs")
        let harness = try CProgramTests.compile("Fuzz/preload-symbols/harness.c", flags: ["-DREPLAY"])
        defer { try? FileManager.default.removeItem(atPath: harness) }
        let result = try CLI.run(["run", "--machine", "default", "--bind", "0000:00:04.0", "--bind", "0000:00:04.1", "--", harness] + inputs)
        #expect(result.status == 0, "exit \(result.status): \(result.stderr.suffix(1200))")
        #expect(result.stdout.contains("replayed \(inputs.count) inputs"), "\(result.stdout.suffix(400))")
    }

    @Test("the fuzzer's first finding replays: an open of a path the program cannot read, which crashed the library in strcmp")
    func unreadablePath() throws {
        let input = CLI.packageRoot.appendingPathComponent("Fuzz/corpus/preload-symbols/crash-open-of-an-unreadable-path").path
        let harness = try CProgramTests.compile("Fuzz/preload-symbols/harness.c", flags: ["-DREPLAY"])
        defer { try? FileManager.default.removeItem(atPath: harness) }
        let result = try CLI.run(["run", "--machine", "default", "--bind", "0000:00:04.0", "--bind", "0000:00:04.1", "--", harness, input])
        #expect(result.status == 0, "exit \(result.status) (\(result.status > 128 ? "signal \(result.status - 128)" : "status")): \(result.stderr.suffix(800))")
    }
}
