import DeviceModels
import Glibc
import PCIBus
import SampleDrivers
import Testing
import VFIO

@Suite struct MemcpySmokeTests {
    @Test func copiesThroughTheContainer() throws {
        let machine = try SimulatedMachine.load(machine: "default")
        let address = PCIAddress(parsing: "0000:5f:00.0")!
        let device = try UserspaceDevice(address, in: machine.vfio)
        defer { device.close() }
        #expect(try MemcpyEngineDriver.probe(device))
        let driver = try MemcpyEngineDriver(device)
        try driver.initialize()
        let source = try device.mapDMA(size: 65536)
        let destination = try device.mapDMA(size: 65536)
        for i in 0..<65536 { source.bytes[i] = UInt8(truncatingIfNeeded: i &* 7) }
        #expect(try driver.memcpy(source: source.iova, destination: destination.iova, size: 65536) == nil)
        #expect(memcmp(source.bytes.baseAddress!, destination.bytes.baseAddress!, 65536) == 0)
        let failure = try driver.memcpy(source: 0xdead_0000, destination: destination.iova, size: 4096)
        #expect(failure?.contains("source read fault") == true)
        try driver.sendMSI()
        #expect(driver.interrupt.read() == 1)
        try driver.remove()
    }
}
