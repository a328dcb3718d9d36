import Machine
import DeviceModels
import PCIBus
import SampleDrivers
import SystemPackage
import Testing
import VFIO

/// Functions with no model: real devices of a fixture bound to vfio-pci, known only from their dump.
@Suite("dumped functions behind vfio-pci and machines built from a dump")
struct DumpedFunctionTests {
    @Test(
        "the dumped 82599 at 3c:00.1: identity from the dump, BARs of unknown size report 0; its dumped DEVCAP has FLR, so the PCI core's flr method gives reset_works (VPCI-232) and RESET succeeds"
    )
    func dumpedFunction() throws {
        let machine = try SimulatedMachine.load(machine: "default")
        let address = PCIAddress(parsing: "0000:3c:00.1")!
        let device = try UserspaceDevice(address, in: machine.vfio)
        defer { device.close() }
        #expect(try device.matches(vendor: 0x8086, device: 0x10fb))
        #expect(machine.snapshot.resetMethods(of: address).first == "flr", "the snapshot's own probe of the dump")
        #expect(device.info.flags.contains(.reset))
        #expect(device.regions.filter { $0.index.barNumber != nil }.allSatisfy { $0.size == 0 && $0.flags.isEmpty })
        try device.device.reset()
        try device.setBusMaster(true)
        #expect(try device.device.readConfig(UInt16.self, at: 4) & 0x4 != 0)
    }

    @Test("a machine from a bare dump: only the attached model is bound (vfio-pci), and it copies")
    func fromDump() throws {
        let fixture = try FixtureMachine.load(directory: FixtureMachine.locate("default"))
        let machine = try SimulatedMachine.load(
            dump: fixture.dumpPath, attaching: [.init(address: PCIAddress(parsing: "0000:5f:00.0")!, model: "memcpy-engine")],
            platform: .intelVTd)
        #expect(machine.snapshot.drivers == [PCIAddress(parsing: "0000:5f:00.0")!: "vfio-pci"])
        let device = try UserspaceDevice(PCIAddress(parsing: "0000:5f:00.0")!, in: machine.vfio)
        defer { device.close() }
        let bound = try device.bind(MemcpyEngineDriver.self)
        let driver = try #require(bound)
        try driver.initialize()
        let region = try device.mapDMA(size: 8192)
        region.bytes.storeBytes(of: UInt64(0x1122_3344), as: UInt64.self)
        #expect(try driver.memcpy(source: region.iova, destination: region.iova + 4096, size: 8) == nil)
        #expect(region.bytes.load(fromByteOffset: 4096, as: UInt64.self) == 0x1122_3344)
    }
}
