import Machine
import PCIBus
import SampleDrivers
import Testing

/// README.md's Swift snippets, verbatim, each run and checked.
@Suite("README snippets")
struct ReadmeSnippets {
    @Test("a Swift driver: the memcpy engine of devices/default copies a page through the IOMMU")
    func swiftDriver() throws {
        let machine = try SimulatedMachine.load(machine: "default")   // devices/default, shipped with the package
        let device = try UserspaceDevice(PCIAddress(parsing: "0000:5f:00.0")!, in: machine.vfio)   // group 28, type1v2 container
        let driver = try MemcpyEngineDriver(device)
        try driver.initialize()                                        // bus master, descriptor ring, MSI-X on an eventfd
        let source = try device.mapDMA(size: 4096), destination = try device.mapDMA(size: 4096)
        source.bytes.initializeMemory(as: UInt8.self, repeating: 0x5a)
        let copied = try driver.memcpy(source: source.iova, destination: destination.iova, size: 4096)   // nil: done
        let refused = try driver.memcpy(source: 0xdead_0000, destination: destination.iova, size: 4096)
        // "channel halted: source read fault at IOVA 0xdead0000"
        print(machine.faultLog(last: 1))                              // ["DMA read fault from 5f:00.0 at IOVA 0xdead0000: not-present (domain N)"]

        #expect(copied == nil)
        #expect(destination.bytes.allSatisfy { $0 == 0x5a })
        #expect(refused == "channel halted: source read fault at IOVA 0xdead0000")
        #expect(machine.faultLog(last: 1).first?.hasPrefix("DMA read fault from 5f:00.0 at IOVA 0xdead0000: not-present (domain ") == true)
        device.close()
    }
}
