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
            stable JSON for scripts, warnings included; under --json an error is {"error": {"errno", "message", "rule"}} \
            on stdout as well. Exit status: 0 success, 1 the answer is no (`check`: not ready; `type`: the kernel \
            would refuse the write), 64 usage, 65 bad input (malformed dump, capability loop, not a regular file, \
            no such function, group or rule), 66 missing input (file, --sysfs or --root directory), 74 unreadable \
            host/sysfs or I/O error.
            """,
        subcommands: [
            CheckCommand.self, TopologyCommand.self, GroupsCommand.self, ExplainCommand.self, ReportCommand.self, TypeCommand.self, RulesCommand.self,
            DemoCommand.self, BenchCommand.self, RunCommand.self,
        ]
    )
}
