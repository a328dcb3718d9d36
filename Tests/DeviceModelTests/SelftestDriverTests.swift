import Machine
import DeviceModels
import Glibc
import IOMMU
import PCIBus
import SampleDrivers
import Testing
import VFIO

/// `vfio_pci_driver_test.c` (VST-13) for every sample driver on the default machine.
@Suite("VFIO selftests: vfio_pci_driver_test (VST-13)")
struct SelftestDriverTests {
    struct Case: Sendable, CustomStringConvertible {
        let driver: any VFIOPCIDriver.Type
        let bdf: String
        var description: String { "\(driver.name) at \(bdf)" }
    }

    static let cases = [
        Case(driver: MemcpyEngineDriver.self, bdf: "0000:5f:00.0"), Case(driver: LoopbackNICDriver.self, bdf: "0000:60:00.0"),
        Case(driver: NVMeDriver.self, bdf: "0000:5e:00.0"),
    ]

    /// The fixture: device opened, driver probed and initialised, two mapped buffers.
    struct Fixture {
        let machine: SimulatedMachine
        let device: UserspaceDevice
        let driver: any VFIOPCIDriver
        let source: DMARegion
        let destination: DMARegion

        init(_ testCase: Case) throws {
            machine = try SimulatedMachine.load(machine: "default")
            device = try UserspaceDevice(PCIAddress(parsing: testCase.bdf)!, in: machine.vfio)
            #expect(try testCase.driver.probe(device))
            driver = try testCase.driver.init(device)
            try driver.initialize()
            source = try device.mapDMA(size: 1 << 16)
            destination = try device.mapDMA(size: 1 << 16)
            for i in 0..<Int(source.size) { source.bytes[i] = UInt8(truncatingIfNeeded: i &* 13 &+ 5) }
        }

        var size: UInt64 { min(driver.maxMemcpySize, 4096) }

        func close() {
            try? driver.remove()
            device.close()
        }
    }

    @Test("init_remove and memcpy_success", arguments: cases)
    func memcpySuccess(_ testCase: Case) throws {
        let fixture = try Fixture(testCase)
        defer { fixture.close() }
        #expect(try fixture.driver.memcpy(source: fixture.source.iova, destination: fixture.destination.iova, size: fixture.size) == nil)
        #expect(memcmp(fixture.source.bytes.baseAddress!, fixture.destination.bytes.baseAddress!, Int(fixture.size)) == 0)
    }

    @Test("memcpy_from_unmapped_iova and memcpy_to_unmapped_iova: failure, a recorded fault, no MSI, no data changed", arguments: cases, [true, false])
    func unmapped(_ testCase: Case, fromUnmapped: Bool) throws {
        let fixture = try Fixture(testCase)
        defer { fixture.close() }
        let unmapped: UInt64 = 0x7_0000_0000
        fixture.destination.bytes.initializeMemory(as: UInt8.self, repeating: 0x3c)
        let before = fixture.machine.core.faults.counters.total
        let failure = try fixture.driver.memcpy(
            source: fromUnmapped ? unmapped : fixture.source.iova, destination: fromUnmapped ? fixture.destination.iova : unmapped,
            size: fixture.size)
        #expect(failure != nil)
        #expect(fixture.destination.bytes.allSatisfy { $0 == 0x3c })
        #expect(fixture.driver.interrupt.read() == nil)
        #expect(fixture.machine.core.faults.counters.total == before + 1)
        let fault = try #require(fixture.machine.core.faults.recent.last)
        #expect(fault.iova == unmapped)
        #expect(fault.reason == .notPresent)
        #expect(fault.requesterID == fixture.device.address.requesterID)
    }

    @Test("send_msi: the device raises its interrupt on the eventfd", arguments: cases)
    func sendMSI(_ testCase: Case) throws {
        let fixture = try Fixture(testCase)
        defer { fixture.close() }
        #expect(fixture.driver.interrupt.read() == nil)
        try fixture.driver.sendMSI()
        #expect(fixture.driver.interrupt.read() == 1)
    }

    @Test("mix_and_match: good and bad copies and MSIs alternate; the device stays usable", arguments: cases)
    func mixAndMatch(_ testCase: Case) throws {
        let fixture = try Fixture(testCase)
        defer { fixture.close() }
        for round in 0..<6 {
            let good = round % 2 == 0
            let failure = try fixture.driver.memcpy(
                source: good ? fixture.source.iova : 0x9_0000_0000, destination: fixture.destination.iova, size: fixture.size)
            #expect((failure == nil) == good, "round \(round): \(failure ?? "ok")")
            try fixture.driver.sendMSI()
            #expect(fixture.driver.interrupt.read() == 1)
        }
        #expect(memcmp(fixture.source.bytes.baseAddress!, fixture.destination.bytes.baseAddress!, Int(fixture.size)) == 0)
    }

    @Test("memcpy_storm: max count × max size, then verify", arguments: cases)
    func storm(_ testCase: Case) throws {
        let fixture = try Fixture(testCase)
        defer { fixture.close() }
        let size = min(fixture.driver.maxMemcpySize, fixture.source.size)
        fixture.destination.bytes.initializeMemory(as: UInt8.self, repeating: 0)
        #expect(try fixture.driver.memcpy(source: fixture.source.iova, destination: fixture.destination.iova, size: size, count: fixture.driver.maxMemcpyCount) == nil)
        #expect(memcmp(fixture.source.bytes.baseAddress!, fixture.destination.bytes.baseAddress!, Int(size)) == 0)
    }
}
