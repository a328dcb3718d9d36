import Machine
import CLinuxVFIO
import DeviceModels
import Glibc
import IOMMU
import PCIBus
import SampleDrivers
import SystemPackage
import Testing
import VFIO
import UserMemory

/// The Linux VFIO selftests' expectations (spec §6.2), run against the default machine's virtual
/// devices through the public VFIO API.
@Suite("VFIO selftests: vfio_pci_device_test and vfio_dma_mapping_test (VST-10, VST-12)")
struct SelftestDeviceTests {
    static let devices = ["0000:5f:00.0", "0000:60:00.0", "0000:5e:00.0"]

    static func open(_ bdf: String) throws -> (SimulatedMachine, UserspaceDevice) {
        let machine = try SimulatedMachine.load(machine: "default")
        return (machine, try UserspaceDevice(PCIAddress(parsing: bdf)!, in: machine.vfio))
    }

    @Test("VST-12 config_space_read_write: IDs match the topology, bus master starts off and toggles", arguments: devices)
    func configSpace(_ bdf: String) throws {
        let (machine, device) = try Self.open(bdf)
        defer { device.close() }
        let function = try #require(machine.snapshot.topology[device.address])
        #expect(try device.device.readConfig(UInt16.self, at: 0) == function.vendorID)
        #expect(try device.device.readConfig(UInt16.self, at: 2) == function.deviceID)
        #expect(try device.device.readConfig(UInt16.self, at: 4) & 0x4 == 0)
        try device.setBusMaster(true)
        #expect(try device.device.readConfig(UInt16.self, at: 4) & 0x4 != 0)
        #expect(machine.devices[device.address]?.isBusMasterEnabled == true)
        try device.setBusMaster(false)
        #expect(try device.device.readConfig(UInt16.self, at: 4) & 0x4 == 0)
    }

    @Test("VST-12 validate_bars: mmap-able BARs map and are non-empty; vfio_bar_fixup sizes every BAR", arguments: devices)
    func bars(_ bdf: String) throws {
        let (machine, device) = try Self.open(bdf)
        defer { device.close() }
        let model = try #require(machine.devices[device.address])
        for region in device.regions {
            guard let bar = region.index.barNumber else { continue }
            if region.flags.contains(.mmap) {
                // Device RAM maps its memory; a register BAR maps as a trapped window (VPCI-60).
                switch try device.device.mmapTarget(region.index.rawValue, offset: 0, length: region.size, shared: true) {
                case .memory(_, _, let memory):
                    #expect(memory.count == Int(region.size))
                    #expect(try device.device.mapRegion(region.index).baseAddress == memory.baseAddress, "the Swift API's view of the same RAM")
                case .registers(let number):
                    #expect(number == bar && model.barMemory(bar) == nil)
                    #expect(throws: VFIOError.self) { try device.device.mapRegion(region.index) }
                }
            } else {
                #expect(throws: VFIOError.self) { try device.device.mmapTarget(region.index.rawValue, offset: 0, length: 4096, shared: true) }
            }
            guard let resource = model.barResource(bar) else { continue }
            // Sizing: write all ones, read back the size mask with the flag bits; the device's own BAR is untouched.
            let physical = model.readConfig(0x10 + 4 * bar, width: 4)
            try device.device.writeConfig(UInt32.max, at: 0x10 + 4 * bar)
            let sized = try device.device.readConfig(UInt32.self, at: 0x10 + 4 * bar)
            #expect(sized == UInt32(truncatingIfNeeded: ~(resource.size - 1)) & ~0xf | resource.registerFlags)
            #expect(model.readConfig(0x10 + 4 * bar, width: 4) == physical)
        }
        #expect(throws: VFIOError.self) { try device.device.regionInfo(VFIORegionIndex.vga.rawValue) }
    }

    @Test(
        "VST-12 vfio_pci_irq_test: enable, trigger, disable on eventfds — EAGAIN before, 1 after",
        arguments: devices, [VFIOIRQIndex.msi, .msix])
    func interrupts(_ bdf: String, _ index: VFIOIRQIndex) throws {
        let (_, device) = try Self.open(bdf)
        defer { device.close() }
        let count = Int(try device.device.irqInfo(index.rawValue).count)
        #expect(count >= 1)
        let fds = try (0..<min(count, 16)).map { _ in try EventFD() }
        try device.device.enableInterrupts(index, eventFDs: fds.map(\.fd))
        for (vector, fd) in fds.enumerated() {
            #expect(fd.read() == nil)  // EAGAIN: not readable before a trigger
            try device.device.triggerInterrupts(index, start: UInt32(vector))
            #expect(fd.read() == 1)
        }
        try device.device.disableInterrupts(index)
        expectErrno(.invalidArgument, mentioning: "is not enabled") { () throws(VFIOError) in try device.device.triggerInterrupts(index) }
    }

    @Test(
        "VST-12 reset: RESET is advertised; VPCI-201/231: pci_try_reset_function saves and restores COMMAND, so bus master and decode are back after it",
        arguments: devices)
    func reset(_ bdf: String) throws {
        let (machine, device) = try Self.open(bdf)
        defer { device.close() }
        #expect(device.info.flags.contains(.reset))
        try device.setBusMaster(true)
        let before = try device.device.readConfig(UInt16.self, at: 4)
        try device.device.reset()
        #expect(try device.device.readConfig(UInt16.self, at: 4) == before)  // VPCI-201: 0x006 stays 0x006, not 0x402
        #expect(try device.device.readConfig(UInt16.self, at: 4) & 0x6 == 0x6)
        #expect(machine.devices[device.address]?.isBusMasterEnabled == true)
    }

    @Test("VST-10 vfio_dma_map_limit_test: map/unmap the last page of the last IOVA range; EOVERFLOW past 2^64")
    func mapLimit() throws {
        let (machine, device) = try Self.open("0000:5f:00.0")
        defer { device.close() }
        let container = device.container
        let last = try #require(try container.info().iovaRanges.last)
        let page: UInt64 = 4096
        let memory = try machine.process.allocate(size: 2 * page)
        let iova = last.end & ~(page - 1)
        try container.map(vaddr: memory.address, iova: iova, size: page)
        #expect(try container.unmap(iova: iova, size: page) == page)
        try container.map(vaddr: memory.address, iova: iova, size: page)
        #expect(try container.unmapAll() == page)
        let overflow = UInt64.max & ~(page - 1)
        expectErrno(.overflow) { () throws(VFIOError) in try container.map(vaddr: memory.address, iova: overflow, size: 2 * page) }
        expectErrno(.overflow) { () throws(VFIOError) in _ = try container.unmap(iova: overflow, size: 2 * page) }
    }
}
