import Benchmarks
import DeviceModels
import KernelRules
import Machine
import Syscalls
import Foundation
import IOMMU
import PCIBus
import SampleDrivers
import SystemPackage
import VFIO

/// A `VFIOError` as a plain `Error` for the command's catch.
struct VFIOErrorBox: Error {
    let error: VFIOError
}

/// Runs `throws(VFIOError)` code from a plain throwing context.
func vfio<T>(_ body: () throws(VFIOError) -> T) throws -> T {
    do throws(VFIOError) {
        return try body()
    } catch {
        throw VFIOErrorBox(error: error)
    }
}

/// One IOMMU fault, as the demo reports it.
struct FaultRecord: Encodable {
    let requester: String
    let iova: String
    let access: String
    let reason: String
    let domain: Int?

    init(_ fault: IOMMUFault) {
        requester = fault.requester
        iova = "0x" + String(fault.iova, radix: 16)
        access = fault.access
        reason = fault.reason.rawValue
        domain = fault.domainID
    }
}

/// The faults the IOMMU recorded after its counter stood at `before` (those the ring still holds).
func faults(in machine: SimulatedMachine, since before: UInt64) -> [FaultRecord] {
    machine.faults(since: before).map(FaultRecord.init)
}

/// `vfiokit demo`: the memcpy driver against the machine's engine, timed and verified.
struct MemcpyDemo {
    let machine: String
    let device: PCIAddress?
    let copies: Int
    let size: Int

    struct Report: Encodable {
        struct Fault: Encodable {
            let iova: String
            let outcome: String
            let destinationUntouched: Bool
            let interruptRaised: Bool
            var contained: Bool { destinationUntouched && !interruptRaised && outcome != "completed" }
        }
        let machine: String
        let device: String
        let group: Int
        let groupDevices: [String]
        let viable: Bool
        let iovaRanges: [String]
        let copies: Int
        let bytes: Int
        let verified: Bool
        let seconds: Double
        let gibPerSecond: Double
        let interrupts: Int
        let deliberateFault: Fault
        let faults: [FaultRecord]

        func print() {
            Swift.print("machine \(machine): memcpy engine \(device), IOMMU group \(group) [\(groupDevices.joined(separator: ", "))], \(viable ? "viable" : "NOT viable")")
            Swift.print("claimed into a type1v2 container; usable IOVA ranges: \(iovaRanges.joined(separator: ", "))")
            // Counts interpolated, not `%d`: that is 32 bits, and 65536 × 65536 bytes is not.
            let timing = String(format: "%.3f ms (%.2f GiB/s)", seconds * 1000, gibPerSecond)
            Swift.print(
                "\(copies) copies × \(bytes / max(copies, 1)) bytes = \(bytes) bytes in \(timing), \(verified ? "every byte verified" : "VERIFICATION FAILED"); \(interrupts) completion interrupts on the eventfd")
            Swift.print("deliberate fault: copy from unmapped IOVA \(deliberateFault.iova): \(deliberateFault.outcome)")
            Swift.print("  destination \(deliberateFault.destinationUntouched ? "untouched" : "CHANGED"), interrupt \(deliberateFault.interruptRaised ? "RAISED" : "none")")
            for fault in faults { Swift.print("  IOMMU fault: \(fault.requester) \(fault.access) at \(fault.iova): \(fault.reason) (domain \(fault.domain.map(String.init) ?? "-"))") }
            Swift.print(verified && deliberateFault.contained ? "result: verified, fault contained" : "result: FAILED")
        }
    }

    func run() throws -> Report {
        let machine = try SimulatedMachine.load(machine: self.machine)
        guard let address = device ?? machine.devices.values.filter({ $0 is MemcpyEngine }).map(\.address).min() else {
            throw MachineError(.noSuchFileOrDirectory, rule: .none, "machine \(self.machine) has no memcpy engine (attach one in its manifest's virtualDevices)")
        }
        guard machine.devices[address] is MemcpyEngine else {
            let engines = machine.devices.values.filter { $0 is MemcpyEngine }.map(\.address.description).sorted()
            let what = machine.devices[address].map { "a \($0.modelName)" } ?? (machine.snapshot.topology.index(of: address) != nil ? "a function of the dump, with no device model" : "not on the machine")
            throw MachineError(
                .operationNotSupportedByDevice, rule: .none,
                "--device \(address) is \(what), not a memcpy engine (the machine's: \(engines.isEmpty ? "none" : engines.joined(separator: ", ")))")
        }
        let opened = try vfio { () throws(VFIOError) in try UserspaceDevice(address, in: machine.vfio) }
        defer { opened.close() }
        let groupID = opened.group.id
        return try vfio { () throws(VFIOError) -> Report in
            guard try MemcpyEngineDriver.probe(opened) else {
                throw VFIOError(.operationNotSupportedByDevice, rule: .VST_06, "\(address) is not a memcpy engine")
            }
            let driver = try MemcpyEngineDriver(opened)
            try driver.initialize()
            let exercise = MemcpyExercise(driver)
            let start = ContinuousClock.now
            let copied = try exercise.copy(count: copies, size: UInt64(size))
            let seconds = Stopwatch.seconds(since: start)
            let before = machine.faultCount
            let contained = try exercise.copyFromUnmapped(size: copied.bytesEach)
            let fault = Report.Fault(
                iova: "0x" + String(contained.iova, radix: 16), outcome: contained.failure ?? "completed",
                destinationUntouched: contained.destinationUntouched, interruptRaised: contained.interruptRaised)
            let recorded = faults(in: machine, since: before)
            try driver.remove()
            let bytes = copies * Int(copied.bytesEach)
            return Report(
                machine: self.machine, device: address.description, group: groupID, groupDevices: try machine.vfio.iommuGroupDevices(groupID).get().map(\.description),
                viable: opened.group.status.contains(.viable), iovaRanges: try opened.container.info().iovaRanges.map(\.description),
                copies: copies, bytes: bytes, verified: copied.verified, seconds: seconds,
                gibPerSecond: Double(bytes) / max(seconds, 1e-9) / Double(1 << 30), interrupts: copied.interrupts, deliberateFault: fault,
                faults: recorded)
        }
    }
}
