import Foundation
import Testing

/// `Tests/CPrograms/hostile_arguments.c` under `vfiokit run`: a buggy program's NULL, `PROT_NONE`,
/// read-only and cut-short pointers — paths, ioctl arguments, pread/pwrite buffers — come back
/// as `EFAULT` from the interposed symbols, as from Linux. Before, a path was read by `strcmp` in
/// the library and a pread buffer written directly by the simulation: the program died of SIGSEGV
/// (SIGILL for NULL in a debug build) inside the library. And the device's DMA into memory the
/// program mapped over with `MAP_FIXED` while it was DMA-mapped ends as the engine's DMA error:
/// before, the simulation's copy took a SIGSEGV (or was emulated as a register access of the
/// BAR mapped there) and the program died of it.
@Suite("vfiokit run: a program's bad pointers")
struct HostileArgumentTests {
    @Test("every bad path, ioctl argument and pread/pwrite buffer is EFAULT; DMA into replaced memory is a device error (22 checks)")
    func hostileArguments() throws {
        let binary = try CProgramTests.compile("Tests/CPrograms/hostile_arguments.c")
        defer { try? FileManager.default.removeItem(atPath: binary) }
        let result = try CLI.run(["run", "--machine", "default", "--", binary])
        let failed = result.stdout.split(separator: "\n").filter { $0.hasPrefix("not ok") }
        #expect(failed.isEmpty, "\(failed.joined(separator: "\n"))\n\(result.stderr.suffix(600))")
        #expect(result.stdout.contains("# 0 of 22 checks failed"), "exit \(result.status): \(result.stdout.suffix(400)) \(result.stderr.suffix(600))")
        #expect(result.status == 0)
    }
}
