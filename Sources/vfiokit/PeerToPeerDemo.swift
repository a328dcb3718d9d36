import DeviceModels
import Foundation
import IOMMU
import KernelRules
import Machine
import PCIBus
import SampleDrivers
import SystemPackage
import VFIO

/// `vfiokit demo --p2p`: two memcpy engines below the machine's PCIe switch — one behind a
/// downstream port with ACS, one behind the port without — each aims a DMA at the other's
/// device memory (BAR2). Without ACS the switch routes it to the peer untranslated: the IOMMU
/// never sees it and the peer's memory changes, although the classic grouping put the peer in
/// its own group (the gap IG-20's `PCIE_SWITCH_DSP_NON_ISOLATED` closes). With ACS Request
/// Redirect the request goes up to the IOMMU, which faults it.
struct PeerToPeerDemo {
    let machine: String

    struct Attempt: Encodable {
        let from: String
        let fromGroup: Int
        let to: String
        let toGroup: Int
        let targetBusAddress: String
        let ingressPort: String
        let portRedirects: Bool
        let portVerdict: String
        let outcome: String
        let peerMemoryChanged: Bool
        let iommuFaults: [FaultRecord]
    }

    struct Report: Encodable {
        let machine: String
        let attempts: [Attempt]
        /// The ACS-less attempt reached the peer and the ACS one was stopped by the IOMMU.
        let contained: Bool

        func print() {
            Swift.print("peer-to-peer DMA below a PCIe switch on machine \(machine):")
            for attempt in attempts {
                Swift.print("")
                Swift.print("\(attempt.from) (group \(attempt.fromGroup)) writes to \(attempt.to)'s BAR2 at \(attempt.targetBusAddress) (group \(attempt.toGroup))")
                Swift.print("  ingress port \(attempt.ingressPort): \(attempt.portRedirects ? "redirects peer requests upstream" : "routes peer requests directly") — \(attempt.portVerdict)")
                Swift.print("  outcome: \(attempt.outcome); peer memory \(attempt.peerMemoryChanged ? "CHANGED" : "unchanged")")
                if attempt.iommuFaults.isEmpty { Swift.print("  IOMMU: saw nothing") }
                for fault in attempt.iommuFaults { Swift.print("  IOMMU fault: \(fault.requester) \(fault.access) at \(fault.iova): \(fault.reason)") }
            }
            Swift.print("")
            Swift.print(contained
                ? "without ACS the DMA bypassed the IOMMU into another group's device; with ACS the IOMMU stopped it. Groups only isolate what the fabric routes upstream (IG-11, IG-20)."
                : "unexpected outcome: see above")
        }
    }

    /// Finds a switch with one downstream port that redirects and one that does not, each with
    /// a function below it, and puts a memcpy engine in each place.
    func run() throws -> Report {
        let base = try SimulatedMachine.load(machine: machine)
        guard let (isolated, exposed) = placement(base.snapshot) else {
            throw MachineError(.noSuchFileOrDirectory, rule: .none, "machine \(machine) has no PCIe switch with one downstream port with ACS and one without, each with a device below")
        }
        let simulated = try SimulatedMachine.load(
            machine: machine,
            attaching: [.init(address: isolated, model: "memcpy-engine"), .init(address: exposed, model: "memcpy-engine")])
        let withoutACS = try attempt(simulated, from: exposed, to: isolated)
        let withACS = try attempt(simulated, from: isolated, to: exposed)
        let contained = withoutACS.peerMemoryChanged && withoutACS.iommuFaults.isEmpty && !withACS.peerMemoryChanged && !withACS.iommuFaults.isEmpty
        return Report(machine: machine, attempts: [withoutACS, withACS], contained: contained)
    }

    /// The first endpoint below a redirecting downstream port and the first below a sibling port
    /// that does not redirect.
    private func placement(_ snapshot: BusSnapshot) -> (isolated: PCIAddress, exposed: PCIAddress)? {
        let grouping = snapshot.grouping
        for function in snapshot.topology.functions where !function.isBridge {
            guard let route = grouping.peerToPeerRoutes(from: function.address).first else { continue }
            // The peer's own DMA must not reach back: its port redirects.
            let redirected = { (peer: PCIAddress) in
                !grouping.peerToPeerRoutes(from: peer).contains { $0.peers.contains(function.address) }
            }
            if let peer = route.peers.first(where: { snapshot.topology[$0]?.isBridge == false && redirected($0) }) {
                return (peer, function.address)
            }
        }
        return nil
    }

    private func attempt(_ machine: SimulatedMachine, from attacker: PCIAddress, to victim: PCIAddress) throws -> Attempt {
        guard let target = machine.devices[victim], let bar = target.barResource(2), let memory = target.barMemory(2) else {
            throw MachineError(.noSuchFileOrDirectory, rule: .none, "no device memory at \(victim)")
        }
        memory.initializeMemory(as: UInt8.self, repeating: 0)
        let grouping = machine.snapshot.grouping
        let port = grouping.upstreamPath(of: attacker).first
        let opened = try vfio { () throws(VFIOError) in try UserspaceDevice(attacker, in: machine.vfio) }
        defer { opened.close() }
        let before = machine.core.faults.counters.total
        let outcome = try vfio { () throws(VFIOError) -> String in
            let driver = try MemcpyEngineDriver(opened)
            try driver.initialize()
            let source = try opened.mapDMA(size: 4096)
            source.bytes.initializeMemory(as: UInt8.self, repeating: 0xee)
            let failure = try driver.memcpy(source: source.iova, destination: bar.busAddress, size: 4096)
            try driver.remove()
            return failure ?? "the copy completed"
        }
        let recorded = faults(in: machine, since: before)
        return Attempt(
            from: attacker.description, fromGroup: machine.groupID(of: attacker) ?? -1, to: victim.description,
            toGroup: machine.groupID(of: victim) ?? -1, targetBusAddress: "0x" + String(bar.busAddress, radix: 16),
            ingressPort: port?.bridge.description ?? "-", portRedirects: port?.verdict.enabled ?? true,
            portVerdict: port.map { "\($0.verdict.rule): \($0.verdict.detail)" } ?? "-", outcome: outcome,
            peerMemoryChanged: memory.contains { $0 != 0 }, iommuFaults: recorded)
    }
}
