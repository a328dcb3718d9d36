import CLinuxVFIO
import Glibc
import IOMMU
import SystemPackage
import Testing

@testable import VFIO
import Syscalls
import UserMemory

/// The facade driven with the structs and request numbers of the kernel's own `<linux/vfio.h>`,
/// the way a C userspace driver calls it (spec §3.1, §4.8).
@Suite("UAPI facade with <linux/vfio.h>")
struct LinuxHeaderUAPITests {
    @Test("request numbers and struct sizes match the kernel header (spec §3.1)")
    func layout() {
        #expect(VFIORequest.getAPIVersion == clinuxvfio_get_api_version())
        #expect(VFIORequest.checkExtension == clinuxvfio_check_extension())
        #expect(VFIORequest.setIOMMU == clinuxvfio_set_iommu())
        #expect(VFIORequest.groupGetStatus == clinuxvfio_group_get_status())
        #expect(VFIORequest.groupSetContainer == clinuxvfio_group_set_container())
        #expect(VFIORequest.groupUnsetContainer == clinuxvfio_group_unset_container())
        #expect(VFIORequest.groupGetDeviceFD == clinuxvfio_group_get_device_fd())
        #expect(VFIORequest.deviceGetInfo == clinuxvfio_device_get_info())
        #expect(VFIORequest.iommuGetInfo == clinuxvfio_iommu_get_info())
        #expect(VFIORequest.iommuMapDMA == clinuxvfio_iommu_map_dma())
        #expect(VFIORequest.iommuUnmapDMA == clinuxvfio_iommu_unmap_dma())
        #expect(VFIORequest.iommuDirtyPages == clinuxvfio_iommu_dirty_pages())
        #expect(MemoryLayout<vfio_iommu_type1_info>.size == Type1Info.headerSize)
        #expect(MemoryLayout<vfio_iommu_type1_dma_map>.size == 32)
        #expect(MemoryLayout<vfio_iommu_type1_dma_unmap>.size == 24)
        #expect(MemoryLayout<vfio_bitmap>.size == 24)
        #expect(MemoryLayout<vfio_iommu_type1_info_cap_migration>.size == 32)
        #expect(VFIOExtension.type1v2.rawValue == UInt32(VFIO_TYPE1v2_IOMMU))
        #expect(VFIOExtension.updateVaddr.rawValue == UInt32(VFIO_UPDATE_VADDR))
        #expect(DMAUnmapFlags.all.rawValue == UInt32(VFIO_DMA_UNMAP_FLAG_ALL))
    }

    @Test("§4.8 state machine: open, status, set container, set IOMMU, info, map, device fd, unmap, close")
    func stateMachine() throws {
        let system = try VFIOTestMachine.system()
        let container = system.open("/dev/vfio/vfio")
        let group = system.open("/dev/vfio/27")
        #expect(container >= 0 && group >= 0)
        #expect(system.ioctl(container, clinuxvfio_get_api_version(), 0) == VFIO_API_VERSION)
        #expect(system.ioctl(container, clinuxvfio_check_extension(), UInt(VFIO_TYPE1v2_IOMMU)) == 1)

        var status = vfio_group_status(argsz: UInt32(MemoryLayout<vfio_group_status>.size), flags: 0)
        #expect(call(system, group, clinuxvfio_group_get_status(), &status) == 0)
        #expect(status.flags == UInt32(VFIO_GROUP_FLAGS_VIABLE))

        var containerFD = container
        #expect(call(system, group, clinuxvfio_group_set_container(), &containerFD) == 0)
        #expect(system.ioctl(container, clinuxvfio_set_iommu(), UInt(VFIO_TYPE1v2_IOMMU)) == 0)

        // T1-72: a first GET_INFO with the bare struct learns the size the capabilities need.
        var info = vfio_iommu_type1_info()
        info.argsz = UInt32(MemoryLayout<vfio_iommu_type1_info>.size)
        #expect(call(system, container, clinuxvfio_iommu_get_info(), &info) == 0)
        #expect(info.argsz == 120 && info.cap_offset == 0, "VT-d: two IOVA ranges around the MSI window")
        #expect(info.flags == UInt32(VFIO_IOMMU_INFO_PGSIZES | VFIO_IOMMU_INFO_CAPS))
        #expect(info.iova_pgsizes == 0x4020_1000)

        let memory = try system.process.allocate(size: 0x10000)
        var map = vfio_iommu_type1_dma_map(
            argsz: UInt32(MemoryLayout<vfio_iommu_type1_dma_map>.size), flags: UInt32(VFIO_DMA_MAP_FLAG_READ | VFIO_DMA_MAP_FLAG_WRITE),
            vaddr: memory.address, iova: 0x10_0000, size: 0x10000)
        #expect(call(system, container, clinuxvfio_iommu_map_dma(), &map) == 0)
        #expect(call(system, container, clinuxvfio_iommu_map_dma(), &map) == -1 && errno == EEXIST)

        let device = "0000:5e:00.0".withCString { system.ioctl(group, clinuxvfio_group_get_device_fd(), UInt(bitPattern: $0)) }
        #expect(device >= 0)
        #expect(system.ioctl(group, clinuxvfio_group_unset_container(), 0) == -1 && errno == EBUSY)
        #expect(system.close(device) == 0)

        var unmap = vfio_iommu_type1_dma_unmap()
        unmap.argsz = UInt32(MemoryLayout<vfio_iommu_type1_dma_unmap>.size)
        unmap.iova = 0x10_0000
        unmap.size = 0x10000
        #expect(call(system, container, clinuxvfio_iommu_unmap_dma(), &unmap) == 0)
        #expect(unmap.size == 0x10000)
        #expect(system.close(group) == 0)
        #expect(system.close(container) == 0)
        #expect(system.core.group(27)?.owner == nil, "closing the group released its DMA ownership (VG-13)")
    }

    @Test("T1-73: the 104-byte GET_INFO of one domain with one IOVA range, byte for byte")
    func getInfoBytes() throws {
        let setup = try mockWithOneMapping()
        let (result, buffer) = getInfo(setup.container, argsz: 104)
        #expect(result == 0)
        let info = buffer.withUnsafeBytes { $0.loadUnaligned(as: vfio_iommu_type1_info.self) }
        #expect(info.argsz == 104 && info.cap_offset == 24)
        #expect(info.flags == UInt32(VFIO_IOMMU_INFO_PGSIZES | VFIO_IOMMU_INFO_CAPS))
        #expect(info.iova_pgsizes == 0x1000, "the mock's 2 KiB pages shown as PAGE_SIZE (T1-52)")
        #expect(buffer[20..<24].allSatisfy { $0 == 0 }, "pad is copied back as 0")
        let migration = buffer.withUnsafeBytes { $0.loadUnaligned(fromByteOffset: 24, as: vfio_iommu_type1_info_cap_migration.self) }
        #expect(migration.header.id == UInt16(VFIO_IOMMU_TYPE1_INFO_CAP_MIGRATION) && migration.header.version == 1 && migration.header.next == 56)
        #expect(migration.flags == 0 && migration.pgsize_bitmap == 0x1000 && migration.max_dirty_bitmap_size == 1 << 28)
        let avail = buffer.withUnsafeBytes { $0.loadUnaligned(fromByteOffset: 56, as: vfio_iommu_type1_info_dma_avail.self) }
        #expect(avail.header.id == UInt16(VFIO_IOMMU_TYPE1_INFO_DMA_AVAIL) && avail.header.next == 72 && avail.avail == 65534)
        #expect(buffer[68..<72].allSatisfy { $0 == 0 }, "DMA_AVAIL is padded to 16 bytes")
        let ranges = buffer.withUnsafeBytes { $0.loadUnaligned(fromByteOffset: 72, as: vfio_iommu_type1_info_cap_iova_range.self) }
        #expect(ranges.header.id == UInt16(VFIO_IOMMU_TYPE1_INFO_CAP_IOVA_RANGE) && ranges.header.next == 0)
        #expect(ranges.nr_iovas == 1 && ranges.reserved == 0)
        let range = buffer.withUnsafeBytes { $0.loadUnaligned(fromByteOffset: 88, as: vfio_iova_range.self) }
        #expect(range.start == 1 << 24 && range.end == (1 << 31) - 1)
        #expect(try setup.container.info().encoded(argsz: 16).count == 16, "min(argsz, 24) header bytes (T1-72)")
    }

    @Test("T1-72: argsz 16 … 23 gets exactly argsz bytes of the header back (argsz grown to 104) and nothing past them")
    func getInfoShortHeader() throws {
        let setup = try mockWithOneMapping()
        let (fullResult, full) = getInfo(setup.container, argsz: 24)
        #expect(fullResult == 0)
        for argsz in 16...23 {
            let (result, buffer) = getInfo(setup.container, argsz: argsz, size: 32)
            #expect(result == 0, "argsz \(argsz)")
            #expect(Array(buffer[..<argsz]) == Array(full[..<argsz]), "argsz \(argsz): the header's first \(argsz) bytes")
            #expect(buffer[argsz...].allSatisfy { $0 == 0xAA }, "argsz \(argsz): nothing written past argsz")
        }
        let info = full.withUnsafeBytes { $0.loadUnaligned(as: vfio_iommu_type1_info.self) }
        #expect(info.argsz == 104 && info.flags == 3 && info.iova_pgsizes == 0x1000 && info.cap_offset == 0)
        #expect(full[20..<24].allSatisfy { $0 == 0 }, "pad (a field this <linux/vfio.h> leaves to padding) is 0")
    }

    @Test("T1-72: with argsz too small for the chain, argsz grows and cap_offset stays 0")
    func getInfoGrowsArgsz() throws {
        // VT-d: the 48-bit aperture minus the MSI window is two ranges: 24 + 32 + 16 + 48 bytes.
        let (result, buffer) = getInfo(try VFIOTestMachine.setup().container, argsz: 104)
        #expect(result == 0)
        let info = buffer.withUnsafeBytes { $0.loadUnaligned(as: vfio_iommu_type1_info.self) }
        #expect(info.argsz == 120 && info.cap_offset == 0 && info.flags == 3)
        #expect(buffer[24...].allSatisfy { $0 == 0xAA }, "no capability is copied")
    }

    /// The mock IOMMU (no reserved regions: its aperture is the single range) with one 8 KiB
    /// mapping at 16 MiB: T1-73's example.
    private func mockWithOneMapping() throws -> VFIOTestMachine.Setup {
        let setup = try VFIOTestMachine.setup(profile: .mock())
        try setup.container.map(vaddr: setup.memory.address, iova: 1 << 24, size: 0x2000)
        return setup
    }

    /// GET_INFO through the ioctl with `argsz` into `size` bytes (default `argsz`) pre-filled with 0xAA.
    private func getInfo(_ container: VFIOContainer, argsz: Int, size: Int? = nil) -> (Int32, [UInt8]) {
        var buffer = [UInt8](repeating: 0xAA, count: size ?? argsz)
        buffer.withUnsafeMutableBytes { $0.storeBytes(of: UInt32(argsz), as: UInt32.self) }
        let result = buffer.withUnsafeMutableBytes { container.ioctl(request: VFIORequest.iommuGetInfo, argument: UInt(bitPattern: $0.baseAddress!)) }
        return (result, buffer)
    }

    /// `ioctl(fd, request, &value)`.
    private func call<T>(_ system: VFIOSystem, _ fd: Int32, _ request: UInt, _ value: inout T) -> Int32 {
        withUnsafeMutableBytes(of: &value) { system.ioctl(fd, request, UInt(bitPattern: $0.baseAddress!)) }
    }
}
