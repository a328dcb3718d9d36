import IOMMU
import IOMMUFD
import Machine
import PCIBus
import Testing
import UserMemory
import VFIO

// docs/iommufd.md's Swift snippet, verbatim.

@Suite("docs/iommufd.md snippets")
struct IOMMUFDSnippets {
    @Test("an IOAS, a device bound through its cdev and attached through an auto domain, a map")
    func ioasAndCdev() throws {
        let machine = try SimulatedMachine.load(machine: "default")
        let vfio = machine.vfio
        let iommufd = IOMMUFDContext(process: vfio.process)                    // open("/dev/iommu")
        let ioas = iommufd.allocateIOAS()                                       // IOMMU_IOAS_ALLOC: ID 1
        let address = PCIAddress(parsing: "0000:5f:00.0")!                      // the memcpy engine
        let cdev = try vfio.openDeviceCdev(vfio.cdevAddresses.firstIndex(of: address)!)   // /dev/vfio/devices/vfioN
        let deviceID = try cdev.bind(to: iommufd)                               // BIND_IOMMUFD: ID 2, DMA blocked
        let hwpt = try cdev.attach(ioas)                                        // ATTACH_IOMMUFD_PT: auto HWPT, ID 3
        let buffer = try vfio.process.allocate(size: 0x10000)
        let iova = try iommufd.map(ioas: ioas, userVA: buffer.address, length: 0x10000, iova: nil, access: .readWrite)
        print(try iommufd.iovaRanges(ioas: ioas).ranges)                         // [[0x0, 0xfedfffff], [0xfef00000, 0xffffffffffff]]
        do { try iommufd.destroy(ioas) } catch { print(error) }                  // EBUSY: HWPT 3 is built on it
        #expect([deviceID, hwpt] == [2, 3])
        #expect(iova % 0x1000 == 0 && iova >= 0x1000)
        #expect(try iommufd.iovaRanges(ioas: ioas).ranges.map(\.description) == ["[0x0, 0xfedfffff]", "[0xfef00000, 0xffffffffffff]"])
        #expect(throws: IOMMUFDError.self) { try iommufd.destroy(ioas) }
        cdev.close()
        iommufd.close()
    }
}
