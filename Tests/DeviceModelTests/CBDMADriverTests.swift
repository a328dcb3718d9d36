import DeviceModels
import Glibc
import Machine
import PCIBus
import SampleDrivers
import Testing
import VFIO

/// `vfio_pci_driver_test.c` (VST-13) with `CBDMADriver`, the selftests' ioat driver in Swift,
/// against the CBDMA model at 00:04.0 rebound to vfio-pci.
@Suite("CBDMADriver: vfio_pci_driver_test against the CBDMA model (VST-13)")
struct CBDMADriverTests {
    /// The fixture: device opened, driver probed and initialised, two mapped 1 MiB buffers.
    struct Fixture {
        let machine: SimulatedMachine
        let device: UserspaceDevice
        let driver: CBDMADriver
        let source: DMARegion
        let destination: DMARegion

        init() throws {
            machine = try SimulatedMachine.load(machine: "default", attaching: [.init(address: CBDMARig.address, model: "cbdma")])
            device = try UserspaceDevice(CBDMARig.address, in: machine.vfio)
            #expect(try CBDMADriver.probe(device))
            driver = try CBDMADriver(device)
            try driver.initialize()
            source = try device.mapDMA(size: 1 << 20)
            destination = try device.mapDMA(size: 1 << 20)
            for i in 0..<Int(source.size) { source.bytes[i] = UInt8(truncatingIfNeeded: i &* 13 &+ 5) }
        }

        func close() {
            try? driver.remove()
            device.close()
        }

        func copied(_ size: UInt64) -> Bool { memcmp(source.bytes.baseAddress!, destination.bytes.baseAddress!, Int(size)) == 0 }
    }

    @Test("probe: 8086:2021 with VER 0x33; init reads XFERCAP (1 MiB) and allows 65535 copies; another device is not probed")
    func probeAndLimits() throws {
        let fixture = try Fixture()
        defer { fixture.close() }
        #expect(fixture.driver.maxMemcpySize == 1 << 20 && fixture.driver.maxMemcpyCount == 65535)
        let other = try UserspaceDevice(PCIAddress(parsing: "0000:5f:00.0")!, in: fixture.machine.vfio)
        defer { other.close() }
        #expect(try !CBDMADriver.probe(other))
    }

    @Test("init_remove and memcpy_success: a 1 MiB copy, checked through the completion")
    func memcpySuccess() throws {
        let fixture = try Fixture()
        defer { fixture.close() }
        #expect(try fixture.driver.memcpy(source: fixture.source.iova, destination: fixture.destination.iova, size: 1 << 20) == nil)
        #expect(fixture.copied(1 << 20))
        #expect(fixture.driver.interrupt.read() == nil)
    }

    @Test("memcpy_from_unmapped_iova and memcpy_to_unmapped_iova: the channel's error, a recorded fault, no MSI, no data", arguments: [true, false])
    func unmapped(fromUnmapped: Bool) throws {
        let fixture = try Fixture()
        defer { fixture.close() }
        let unmapped: UInt64 = 0x7_0000_0000
        fixture.destination.bytes.initializeMemory(as: UInt8.self, repeating: 0x3c)
        let faults = fixture.machine.faultCount
        let failure = try fixture.driver.memcpy(
            source: fromUnmapped ? unmapped : fixture.source.iova, destination: fromUnmapped ? fixture.destination.iova : unmapped, size: 4096)
        #expect(failure?.contains(fromUnmapped ? "Read Data Error" : "Write Data Error") == true, "\(failure ?? "no failure")")
        #expect(fixture.destination.bytes.allSatisfy { $0 == 0x3c })
        #expect(fixture.driver.interrupt.read() == nil)
        #expect(fixture.machine.faultCount == faults + 1)
    }

    @Test("send_msi and mix_and_match: good and bad copies and MSIs alternate; the channel stays usable")
    func mixAndMatch() throws {
        let fixture = try Fixture()
        defer { fixture.close() }
        for round in 0..<6 {
            let good = round % 2 == 0
            let failure = try fixture.driver.memcpy(
                source: good ? fixture.source.iova : 0x9_0000_0000, destination: fixture.destination.iova, size: 4096)
            #expect((failure == nil) == good, "round \(round): \(failure ?? "ok")")
            try fixture.driver.sendMSI()
            #expect(fixture.driver.interrupt.read() == 1)
        }
        #expect(fixture.copied(4096))
    }

    @Test("memcpy_storm: 65535 copies of 64 KiB in one DMACOUNT write")
    func storm() throws {
        let fixture = try Fixture()
        defer { fixture.close() }
        #expect(try fixture.driver.memcpy(source: fixture.source.iova, destination: fixture.destination.iova, size: 1 << 16, count: 65535) == nil)
        #expect(fixture.copied(1 << 16))
    }
}
