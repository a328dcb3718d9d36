import KernelRules
import Machine
import DeviceModels
import Glibc
import IOMMU
import PCIBus
import SampleDrivers
import SystemPackage
import Testing
import VFIO
import UserMemory

/// The device's bus-master port: nothing outside what was granted is ever touched.
@Suite("DMAPort: bus master, IOTLB flush on unmap, granted memory, peer-to-peer")
struct DMAPortTests {
    static let engine = PCIAddress(parsing: "0000:5f:00.0")!

    /// `devices/default` with its memcpy engine opened the selftests' way, Bus Master as asked.
    static func openEngine(busMaster: Bool) throws -> (SimulatedMachine, UserspaceDevice) {
        let machine = try SimulatedMachine.load(machine: "default")
        let device = try UserspaceDevice(engine, in: machine.vfio)
        if busMaster { try device.setBusMaster(true) }
        return (machine, device)
    }

    @Test("DMA needs Bus Master Enable: with it off the transfer fails before reaching the IOMMU")
    func busMaster() throws {
        let (machine, device) = try Self.openEngine(busMaster: false)
        defer { device.close() }
        let region = try device.mapDMA(size: 4096)
        var port = try #require(machine.devices[Self.engine]).dmaPort()
        #expect(throws: DMAFault.self) { try port.store(UInt32(7), to: region.iova) }
        do throws(DMAFault) { try port.store(UInt32(7), to: region.iova) } catch { #expect(error.reason == .busMasterDisabled) }
        #expect(machine.core.faults.counters.total == 0)
        try device.setBusMaster(true)
        try port.store(UInt32(7), to: region.iova)
        #expect(region.bytes.load(as: UInt32.self) == 7)
    }

    @Test("an unmap flushes the IOTLB: the next DMA to that IOVA faults and the memory is not written")
    func unmapFlushes() throws {
        let (machine, device) = try Self.openEngine(busMaster: true)
        defer { device.close() }
        let memory = try machine.process.allocate(size: 8192)
        try device.container.map(vaddr: memory.address, iova: 0x100000, size: 8192)
        var port = try #require(machine.devices[Self.engine]).dmaPort()
        try port.store(UInt64(1), to: 0x100000)  // fills the IOTLB
        #expect(try port.load(UInt64.self, from: 0x100008) == 0)
        #expect(try device.container.unmap(iova: 0x100000, size: 8192) == 8192)
        #expect(throws: DMAFault.self) { try port.store(UInt64(2), to: 0x100000) }
        #expect(memory.pointer.load(as: UInt64.self) == 1)
        #expect(machine.core.faults.recent.last?.iova == 0x100000)
    }

    @Test("T1-33: a copy engine's cached runs end with the unmap: the same IOVA remapped elsewhere is written there, never in the old memory")
    func cachedRunsEndAtUnmap() throws {
        let (machine, device) = try Self.openEngine(busMaster: true)
        defer { device.close() }
        let source = try device.mapDMA(size: 4096)
        source.bytes.initializeMemory(as: UInt8.self, repeating: 0x5a)
        let first = try machine.process.allocate(size: 4096)
        try device.container.map(vaddr: first.address, iova: 0x400000, size: 4096)
        var port = try #require(machine.devices[Self.engine]).dmaPort()
        for _ in 0..<2 { try port.copy(from: source.iova, to: 0x400000, count: 4096) }  // the second runs on the cached runs
        #expect(first.pointer.load(as: UInt8.self) == 0x5a)
        first.pointer.initializeMemory(as: UInt8.self, repeating: 0, count: 4096)
        #expect(try device.container.unmap(iova: 0x400000, size: 4096) == 4096)
        do throws(DMAFault) {
            try port.copy(from: source.iova, to: 0x400000, count: 4096)
            Issue.record("a copy to an unmapped IOVA succeeded")
        } catch {
            #expect(error.reason == .iommu(.notPresent) && error.bytesCompleted == 0)
        }
        let second = try machine.process.allocate(size: 4096)
        try device.container.map(vaddr: second.address, iova: 0x400000, size: 4096)
        try port.copy(from: source.iova, to: 0x400000, count: 4096)
        #expect(second.pointer.load(as: UInt8.self) == 0x5a)
        #expect(UnsafeRawBufferPointer(start: first.pointer, count: 4096).allSatisfy { $0 == 0 }, "the old memory is never written again")
    }

    @Test("a transfer spanning a mapped and an unmapped page completes the first part and reports how much")
    func partialCompletion() throws {
        let (machine, device) = try Self.openEngine(busMaster: true)
        defer { device.close() }
        let memory = try machine.process.allocate(size: 4096)
        try device.container.map(vaddr: memory.address, iova: 0x200000, size: 4096)
        var port = try #require(machine.devices[Self.engine]).dmaPort()
        let payload = UnsafeMutableRawBufferPointer.allocate(byteCount: 6000, alignment: 8)
        defer { payload.deallocate() }
        payload.initializeMemory(as: UInt8.self, repeating: 0xab)
        do throws(DMAFault) {
            try port.write(to: 0x200000, from: UnsafeRawBufferPointer(payload))
            Issue.record("a write past the mapping succeeded")
        } catch {
            #expect(error.bytesCompleted == 4096)
            #expect(error.iova == 0x201000)
            #expect(error.reason == .iommu(.notPresent))
            #expect(error.errno == .badAddress)
        }
    }

    @Test("an IOMMU mapping of memory the process never allocated is refused at the port, untouched")
    func unbackedMemory() throws {
        let (machine, device) = try Self.openEngine(busMaster: true)
        defer { device.close() }
        // Straight into the container's domain through the IOMMU layer: no pinning, no check.
        let domain = try #require(machine.core.group(device.group.id)?.domain)
        try domain.map(iova: 0x300000, to: 0x7f00_0000_0000, size: 4096, access: .readWrite)
        var port = try #require(machine.devices[Self.engine]).dmaPort()
        do throws(DMAFault) {
            try port.store(UInt64.max, to: 0x300000)
            Issue.record("DMA reached unallocated host memory")
        } catch {
            #expect(error.reason == .unbackedMemory(hostAddress: 0x7f00_0000_0000))
            #expect(error.errno == .ioError)
        }
    }

    @Test("T1-20: memory the process releases is no longer a grant: the next DMA through a mapping that outlived it faults, untouched")
    func releasedMemoryFaults() throws {
        let (machine, device) = try Self.openEngine(busMaster: true)
        defer { device.close() }
        let memory = try machine.process.allocate(size: 4096)
        // Straight into the domain, unpinned, so the process may release the memory under it.
        let domain = try #require(machine.core.group(device.group.id)?.domain)
        try domain.map(iova: 0x500000, to: memory.address, size: 4096, access: .readWrite)
        var port = try #require(machine.devices[Self.engine]).dmaPort()
        for value in 1...2 as ClosedRange<UInt64> { try port.store(value, to: 0x500000) }  // the second on cached runs and grant
        #expect(memory.pointer.load(as: UInt64.self) == 2)
        try machine.process.release(memory)
        do throws(DMAFault) {
            try port.store(UInt64(3), to: 0x500000)
            Issue.record("DMA reached memory the process released")
        } catch {
            #expect(error.reason == .unbackedMemory(hostAddress: memory.address))
        }
    }

    @Test("the IOMMU sees the requester ID after aliasing (ALIAS-01) and peers below a non-ACS port are reached directly")
    func routes() throws {
        let machine = try SimulatedMachine.load(
            machine: "default",
            attaching: [.init(address: PCIAddress(parsing: "0000:1a:00.0")!, model: "memcpy-engine"), .init(address: PCIAddress(parsing: "0000:1c:00.0")!, model: "memcpy-engine")])
        let exposed = try #require(machine.devices[PCIAddress(parsing: "0000:1c:00.0")!])
        let isolated = try #require(machine.devices[PCIAddress(parsing: "0000:1a:00.0")!])
        #expect(exposed.dmaPort().peerToPeerWindows.map(\.peer) == [isolated.address, isolated.address])
        #expect(isolated.dmaPort().peerToPeerWindows.isEmpty)
        #expect(machine.snapshot.grouping.peerToPeerRoutes(from: exposed.address).map(\.port.description) == ["0000:19:10.0"])
        #expect(machine.groupID(of: exposed.address) != machine.groupID(of: isolated.address))
        // The conventional NIC behind the PCIe-to-PCI bridge issues as (bus 02, 00.0).
        #expect(machine.snapshot.grouping.requesterID(of: PCIAddress(parsing: "0000:02:04.0")!) == 0x0200)
        #expect(exposed.dmaPort().requesterID == exposed.address.requesterID)
    }

    @Test("attaching a model where no bridge leads fails with EINVAL naming the bus")
    func unreachableBus() throws {
        let unreachable = try #require(throws: MachineError.self) {
            try SimulatedMachine.load(machine: "default", attaching: [.init(address: PCIAddress(parsing: "0000:99:00.0")!, model: "memcpy-engine")])
        }
        #expect(unreachable.errno == .invalidArgument && unreachable.message.contains("no bridge leads to bus 99"), "\(unreachable)")
        let unknown = try #require(throws: MachineError.self) {
            try SimulatedMachine.load(machine: "default", attaching: [.init(address: PCIAddress(parsing: "0000:5f:00.0")!, model: "toaster")])
        }
        #expect(unknown.errno == .invalidArgument && unknown.message.contains("toaster"), "\(unknown)")
        #expect(unknown.cause(as: DeviceModelError.self) != nil, "the model catalogue's error travels as the cause")
    }
}
