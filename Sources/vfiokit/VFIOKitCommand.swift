import ArgumentParser
import PCIBus

@main
struct VFIOKitCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "vfiokit",
        abstract: "Linux VFIO over a simulated PCI bus: topology, IOMMU groups and why.",
        discussion: """
            Every command reads this host (libpci, sysfs) unless given --dump FILE (an lspci -x/-xxx/-xxxx \
            dump), --machine NAME (a machine under devices/) or --sysfs DIR (another sysfs root). --json prints \
            stable JSON for scripts, warnings included. Exit status: 0 success, 64 usage, 65 bad input (malformed \
            dump, capability loop, not a regular file), 66 missing input, 74 unreadable host/sysfs; `type` exits 1 \
            when the kernel would refuse the write.
            """,
        subcommands: [
            TopologyCommand.self, GroupsCommand.self, ExplainCommand.self, ReportCommand.self, TypeCommand.self,
            DemoCommand.self, BenchCommand.self, RunCommand.self,
        ]
    )
}
