import ArgumentParser
import DeviceModels
import Foundation
import Machine
import PCIBus

/// `vfiokit demo`: the framework end to end on a machine with a memcpy engine.
struct DemoCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "demo",
        abstract: "Run a userspace driver against the machine's memcpy engine: claim its group, map buffers, copy, verify, fault.",
        discussion: """
            Finds the memcpy engine on the machine (devices/default has one at 0000:5f:00.0), checks its IOMMU group is \
            viable, claims it into a type1v2 VFIOContainer, maps DMA buffers, runs copies through the device and verifies \
            them, then points the device at an IOVA that was never mapped and shows the IOMMU fault. With --p2p it \
            instead puts two engines below the machine's PCIe switch — one behind a downstream port with ACS, one behind \
            the port without — and shows which DMA aimed at the other's BAR the IOMMU sees. Exit status 1 when the \
            copies do not verify or the fault is not contained.
            """)

    @Option(help: "A machine under devices/ (name or directory).")
    var machine = "default"

    @Option(help: "The memcpy engine's address (default: the first one on the machine).")
    var device: String?

    @Option(help: "Copies to run.")
    var copies = 64

    @Option(help: "Bytes per copy (at most the engine's maximum transfer).")
    var size = 65536

    @Flag(help: "Show peer-to-peer DMA below a switch port without ACS, and with it.")
    var p2p = false

    @Flag(help: "Print JSON.")
    var json = false

    func validate() throws {
        guard copies > 0, copies <= 1 << 20 else { throw ValidationError("--copies must be 1 … 1048576") }
        guard size > 0, size <= 1 << 20 else { throw ValidationError("--size must be 1 … 1048576") }
        if let device, PCIAddress(parsing: device) == nil { throw ValidationError("--device \(device): not a PCI address") }
    }

    func run() throws {
        do {
            if p2p {
                let report = try PeerToPeerDemo(machine: machine).run()
                if json { try printJSON(report) } else { report.print() }
                if !report.contained { throw ExitCode(1) }
            } else {
                let report = try MemcpyDemo(machine: machine, device: device.flatMap { PCIAddress(parsing: $0) }, copies: copies, size: size).run()
                if json { try printJSON(report) } else { report.print() }
                if !report.verified || !report.deliberateFault.contained { throw ExitCode(1) }
            }
        } catch let error as MachineError {
            warn("error: \(error)")
            throw ExitCode(exitStatus(of: error))
        } catch let error as VFIOErrorBox {
            warn("error: \(error.error)")
            throw ExitCode(1)
        }
    }
}
