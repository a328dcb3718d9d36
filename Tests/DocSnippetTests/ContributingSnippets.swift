import DeviceModels
import Machine
import PCIBus
import SampleDrivers
import Testing
import VFIO

// docs/contributing.md's Swift snippets, verbatim: a device model and a test that attaches it.

/// A stamp device: writing an IOVA to BAR0 offset 0x08 makes it DMA the 8-byte stamp at 0x00 there.
///
/// | offset | name  | access | meaning |
/// |--------|-------|--------|---------|
/// | 0x00   | STAMP | RO u64 | 0x5354414d |
/// | 0x08   | GO    | WO u64 | IOVA to write the stamp to |
final class StampDevice: VirtualPCIDevice, @unchecked Sendable {
    static let stamp: UInt64 = 0x5354_414d

    init(address: PCIAddress, mmioBase: UInt64) {
        var builder = VirtualConfigBuilder(vendor: ModelCatalog.vendorID, device: 0x56ff, classCode: 0x088000)
        builder.addBAR(0, PCIBARResource(kind: .memory64, size: 4096, busAddress: mmioBase))
        builder.addMSI(vectors: 1)
        builder.addPCIExpress(.endpoint, flr: true)
        super.init(address: address, modelName: "stamp device", layout: builder.build())
    }

    override func mmioRead(_ bar: Int, offset: UInt64, width: Int) -> UInt64 {
        bar == 0 && offset == 0x00 ? Self.stamp : 0
    }

    override func mmioWrite(_ bar: Int, offset: UInt64, width: Int, _ value: UInt64) {
        guard bar == 0, offset == 0x08 else { return }
        var port = dmaPort()                     // bus master, requester ID, the group's domain
        try? port.store(Self.stamp, to: value)   // a fault is the IOMMU's to log; the device just stops
    }
}

@Suite("docs/contributing.md snippets")
struct ContributingSnippets {
    @Test("a new device model, attached to devices/default and driven through VFIO")
    func stampDevice() throws {
        let base = try BusSnapshot.load(.machine(FixtureMachine.load(directory: FixtureMachine.locate("default"))))
        let slot = PCIAddress(parsing: "0000:5f:00.0")!          // one of the manifest's freeSlots
        let machine = try SimulatedMachine(base: base, devices: [StampDevice(address: slot, mmioBase: ModelCatalog.mmioBase(forDevice: 0))])
        let device = try UserspaceDevice(slot, in: machine.vfio)
        let region = try device.mapDMA(size: 4096)
        try device.setBusMaster(true)
        try device.device.writeRegister(region.iova, bar: 0, offset: 0x08)
        #expect(region.bytes.load(as: UInt64.self) == StampDevice.stamp)

        #expect(machine.groupID(of: slot) == 28)
        device.close()
    }
}
