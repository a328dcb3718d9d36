import CLinuxVFIO
import DeviceModels
import Foundation
import Glibc
import IOMMU
import KernelRules
import Machine
import PCIBus
import SampleDrivers
import Syscalls
import SystemPackage
import Testing
import VFIO

/// `../shared/spec/vfio-pci.md` §3.4: BAR mappings zapped (`vfio_pci_zap_bars`, VPCI-103) and
/// faulted back in (`vfio_pci_mmap_huge_fault`, VPCI-102), through both paths. The UAPI path maps
/// BAR2 (device RAM) through the device fd and reads the mapping's protection in
/// `/proc/self/maps` — a zapped mapping is `PROT_NONE` until its next access faults it in — and
/// touches it; the Swift API path reads `VFIODevice.barMappingZaps` and `memoryDecodeEnabled`.
/// The `SIGBUS` of an access with decode off is checked in a forked child of
/// `Tests/CPrograms/vfio_conformance.c` (CProgramTests), where no test runner's handler runs.
@Suite("VPCI BAR mappings zapped and faulted back in (VPCI-102, VPCI-103)")
struct VPCIBARZapTests {
    static let rows: [VPCIRow] = zaps

    @Test("VPCI BAR zap rows", arguments: rows, VPCIPath.allCases)
    func row(_ row: VPCIRow, _ path: VPCIPath) throws { try row.run(path) }

    static let zaps: [VPCIRow] = [
        VPCIRow("VPCI-103", "a COMMAND write clearing MEMORY zaps the BAR mappings; one keeping MEMORY (bus master off) does not") { rig in
            let mapping = try rig.mapRAMBAR()
            defer { mapping.unmap() }
            rig.cfg(4, 2, write: 0x0002)
            #expect(!mapping.zapped())
            rig.cfg(4, 2, write: 0x0000)
            #expect(mapping.zapped())
        },
        VPCIRow("VPCI-103", "VFIO_DEVICE_RESET zaps; the mapping faults back in afterwards (decode restored by the reset)") { rig in
            let mapping = try rig.mapRAMBAR()
            defer { mapping.unmap() }
            rig.cfg(4, 2, write: 0x0002)
            #expect(rig.reset() == 0)
            #expect(mapping.zapped())
            #expect(mapping.touch() == 0, "faulted back in: the FLR cleared the RAM")
            #expect(!mapping.zapped())
        },
        VPCIRow("VPCI-103", "a hot reset zaps every open device of the set") { rig in
            let mapping = try rig.mapRAMBAR()
            defer { mapping.unmap() }
            #expect(try rig.hotReset() == 0)
            #expect(mapping.zapped())
        },
        VPCIRow("VPCI-103", "Initiate FLR written to DEVCTL (DEVCAP has FLR) zaps before the reset") { rig in
            let mapping = try rig.mapRAMBAR()
            defer { mapping.unmap() }
            rig.cfg(VPCIImage.pcie + 8, 2, write: rig.cfg(VPCIImage.pcie + 8, 2) | 0x8000)
            #expect(mapping.zapped())
        },
        VPCIRow("VPCI-103", "PMCSR to D3hot zaps; back in D0 (decode on) the mapping faults back in with the device's bytes") { rig in
            let mapping = try rig.mapRAMBAR()
            defer { mapping.unmap() }
            rig.cfg(VPCIImage.pm + 4, 2, write: 0x0003)
            #expect(mapping.zapped())
            #expect(!rig.memoryDecodeEnabled)
            rig.cfg(VPCIImage.pm + 4, 2, write: 0x0000)
            rig.model.barMemory(VPCIImage.ramBAR)![0x20] = 0x5c
            #expect(rig.memoryDecodeEnabled)
            #expect(mapping.touch() == 0x5c)
        },
        VPCIRow("VPCI-102", "memory decode off then on again: the zapped mapping faults back in on its next access and reads the device's RAM") { rig in
            let mapping = try rig.mapRAMBAR()
            defer { mapping.unmap() }
            rig.cfg(4, 2, write: 0x0000)
            #expect(mapping.zapped() && !rig.memoryDecodeEnabled)
            rig.cfg(4, 2, write: 0x0002)
            rig.model.barMemory(VPCIImage.ramBAR)![0x20] = 0xa7
            #expect(rig.memoryDecodeEnabled)
            #expect(mapping.touch() == 0xa7)
            #expect(!mapping.zapped())
        },
    ]
}

/// One mapping of BAR2 for a zap row: on the UAPI path a real mapping through the device fd; on
/// the Swift API path the device's RAM as a Swift driver holds it (`mapRegion`), which learns of
/// a zap from `barMappingZaps` and uses its mapping again once memory decode is back on.
final class VPCIRAMMapping {
    let rig: VPCIRig
    let address: UnsafeMutableRawPointer?
    let length: Int
    private var zapsBefore: Int

    init(rig: VPCIRig, address: UnsafeMutableRawPointer?, length: Int, zapsBefore: Int) {
        self.rig = rig
        self.address = address
        self.length = length
        self.zapsBefore = zapsBefore
    }

    /// Whether the mapping is zapped now: `PROT_NONE` in `/proc/self/maps`; on the Swift API path,
    /// whether the device zapped its mappings since the mapping was made.
    func zapped() -> Bool {
        guard let address else { return rig.device!.device.barMappingZaps > zapsBefore }
        let start = String(UInt(bitPattern: address), radix: 16)
        guard let line = Self.procMaps().split(separator: "\n").first(where: { $0.hasPrefix(start + "-") }) else { return false }
        return line.split(separator: " ")[1].hasPrefix("---")
    }

    /// The byte at 0x20 of BAR2 read through the mapping (faulting it back in when zapped; the
    /// Swift driver's mapping only once decode is on, else nil).
    func touch() -> UInt8? {
        guard let address else {
            let device = rig.device!.device
            guard device.memoryDecodeEnabled, let memory = try? device.mapRegion(.bar2) else { return nil }
            zapsBefore = device.barMappingZaps
            return memory[0x20]
        }
        return address.load(fromByteOffset: 0x20, as: UInt8.self)
    }

    /// `/proc/self/maps`, read whole (procfs reports no size, so read until EOF).
    static func procMaps() -> String {
        let fd = Glibc.open("/proc/self/maps", O_RDONLY)
        guard fd >= 0 else { return "" }
        defer { Glibc.close(fd) }
        var bytes: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 65536)
        while true {
            let count = chunk.withUnsafeMutableBytes { Glibc.read(fd, $0.baseAddress, $0.count) }
            guard count > 0 else { break }
            bytes += chunk[0..<count]
        }
        return String(decoding: bytes, as: UTF8.self)
    }

    func unmap() {
        if let address { _ = rig.system.munmap(address, length) }
    }
}

extension VPCIRig {
    /// Maps BAR2 (64 KiB of device RAM) as the path does.
    func mapRAMBAR() throws -> VPCIRAMMapping {
        switch path {
        case .swiftAPI:
            return VPCIRAMMapping(rig: self, address: nil, length: 0, zapsBefore: device!.device.barMappingZaps)
        case .uapi:
            let mapped = system.mmap(nil, 0x10000, PROT_READ | PROT_WRITE, MAP_SHARED, fds!.device, Int64(VPCIImage.ramBAR) << 40)
            let address = try #require(mapped)
            return VPCIRAMMapping(rig: self, address: address, length: 0x10000, zapsBefore: 0)
        }
    }

    /// `__vfio_pci_memory_enabled`: on the UAPI path the virtual COMMAND's MEMORY bit and PMCSR's
    /// state read through config space.
    var memoryDecodeEnabled: Bool {
        switch path {
        case .swiftAPI: return device!.device.memoryDecodeEnabled
        case .uapi: return cfg(4, 2) & 0x2 != 0 && cfg(VPCIImage.pm + 4, 2) & 0x3 < 3
        }
    }
}
