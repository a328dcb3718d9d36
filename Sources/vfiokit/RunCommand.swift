import ArgumentParser
import Foundation
import KernelRules
import Machine
import PCIBus
import Syscalls
import SystemPackage
import UserMemory

#if canImport(Glibc)
    import Glibc
#endif

/// `vfiokit run -- PROGRAM`: an unmodified, dynamically linked program against a simulated
/// machine. The preload library (`libvfiokit-preload.so`, beside this executable) is injected
/// with `LD_PRELOAD`; the program's paths under /dev/vfio and /sys, its VFIO descriptors, ioctls,
/// region reads and writes, BAR mappings and DMA reach the simulation. No root, no kernel module.
struct RunCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "run",
        abstract: "Run an unmodified program (a VFIO driver, the kernel's VFIO selftests) against a simulated machine.",
        discussion: """
            The program sees the machine's /dev/vfio, /sys/bus/pci, /sys/kernel/iommu_groups and /sys/module/vfio*; \
            every other path is the host's. --bind BDF binds vfio-pci to a function, as `driverctl set-override BDF vfio-pci` \
            would. --iommufd-test gives /dev/iommu the iommufd selftest mock (CONFIG_IOMMUFD_TEST). Exit status: the program's (128+N when signal N ended it), 64 for a usage error (a --bind naming no \
            function), 126/127 when the program cannot be run.
            """)

    @Option(name: .long, help: "A machine under devices/ (a name, e.g. default) or a directory; default: default.")
    var machine: String?

    @Option(name: .long, help: "An lspci -xxxx dump as the machine (no virtual devices).")
    var dump: String?

    @Option(name: .long, help: ArgumentHelp("A sysfs root laid out as /sys (its functions and drivers) as the machine.", valueName: "dir"))
    var sysfs: String?

    @Option(name: .long, help: ArgumentHelp("Bind vfio-pci to this function (repeatable).", valueName: "bdf"))
    var bind: [String] = []

    @Flag(
        name: .customLong("iommufd-test"),
        help: "A kernel built with CONFIG_IOMMUFD_TEST: /dev/iommu has the selftest mock (IOMMU_TEST_CMD, mock devices, access objects), as the kernel's tools/testing/selftests/iommu/iommufd needs.")
    var iommufdTest = false

    @Argument(parsing: .postTerminator, help: "The program and its arguments, after --.")
    var command: [String] = []

    func validate() throws {
        if [dump != nil, machine != nil, sysfs != nil].filter({ $0 }).count > 1 {
            throw ValidationError("give at most one of --dump, --machine and --sysfs")
        }
        if command.isEmpty { throw ValidationError("name the program to run after --, e.g. vfiokit run -- ./vfio_dma_mapping_test 0000:00:04.0") }
        for text in bind where PCIAddress(parsing: text) == nil {
            throw ValidationError("--bind \(text): not a PCI address (DDDD:BB:DD.F)")
        }
    }


    func run() throws {
        let source = try resolvedSource()
        // A bind that cannot make sense is a usage error here, not a failure inside the program.
        let binding = bind.compactMap { PCIAddress(parsing: $0) }
        do {
            if source.hasPrefix("dump:") {
                _ = try SimulatedMachine.load(dump: String(source.dropFirst(5)), attaching: [], binding: binding)
            } else if source.hasPrefix("sysfs:") {
                _ = try SimulatedMachine.load(sysfs: String(source.dropFirst(6)), binding: binding)
            } else {
                _ = try SimulatedMachine.load(machine: source, binding: binding)
            }
        } catch {
            printError("vfiokit run: \(error)")
            throw ExitCode(error.errno == .operationNotSupportedByDevice ? 64 : exitStatus(of: error))
        }
        guard let library = PreloadLauncher.library() else {
            printError("vfiokit run: libvfiokit-preload.so is not beside \(PreloadLauncher.executableDirectory) (build it: swift build --product vfiokit-preload)")
            throw ExitCode(70)
        }
        let environment = PreloadLauncher.environment(library: library, machine: source, binding: binding.map(\.description), iommufdTest: iommufdTest)
        // The terminal's ^C goes to the program; this process waits for it to finish.
        signal(SIGINT, SIG_IGN)
        signal(SIGQUIT, SIG_IGN)
        let outcome = PreloadLauncher.run(command, environment: environment)
        if let failure = outcome.failure { printError("vfiokit run: \(failure)") }
        throw ExitCode(outcome.status)
    }

    /// `--machine`'s directory (so the program finds it whatever its own location), `dump:FILE` or
    /// `sysfs:DIR`: the form `vfiokit_start` takes.
    private func resolvedSource() throws -> String {
        if let dump { return "dump:" + URL(fileURLWithPath: dump).path }
        if let sysfs { return "sysfs:" + URL(fileURLWithPath: sysfs).path }
        do {
            return URL(fileURLWithPath: try FixtureMachine.locate(machine ?? "default")).path
        } catch {
            printError("vfiokit run: \(error)")
            throw ExitCode(error.exitStatus)
        }
    }

}

private func printError(_ message: String) {
    FileHandle.standardError.write(Data((message + "\n").utf8))
}
