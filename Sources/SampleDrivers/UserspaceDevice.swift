import KernelRules
import SystemPackage
import UserMemory
import PCIBus
import Syscalls
import VFIO

/// A mapped DMA region of the driver (`struct dma_region`, VST-02): host memory and the IOVA
/// the device sees it at.
public struct DMARegion: Sendable {
    public let memory: HostMemory
    public let iova: UInt64
    public var size: UInt64 { memory.size }
    /// The bytes, for the driver to fill and check.
    public var bytes: UnsafeMutableRawBufferPointer { UnsafeMutableRawBufferPointer(start: memory.pointer, count: Int(memory.size)) }
}

/// A device opened the way the VFIO selftests' library opens one (`vfio_pci_device_init`, VST-05):
/// find its IOMMU group, open `/dev/vfio/<N>` and require it to be viable, put it in a new
/// type1v2 container, get the device fd, then read device, region and IRQ info. DMA memory is
/// mapped through the container at IOVAs from an `IOVAAllocator` over the container's IOVA
/// ranges (VST-02..04). Everything goes through the system-call boundary and the public VFIO API.
public final class UserspaceDevice {
    public let system: VFIOSystem
    public let address: PCIAddress
    public let group: VFIOGroup
    public let container: VFIOContainer
    public let device: VFIODevice
    public let info: VFIODeviceInfo
    public let regions: [VFIORegionInfo]
    public let irqs: [VFIOIRQInfo]
    public private(set) var allocator: IOVAAllocator
    public private(set) var mapped: [DMARegion] = []

    public init(_ address: PCIAddress, in system: VFIOSystem, iommuType: VFIOExtension = .type1v2) throws(VFIOError) {
        // VST-05: the group is the last component of the device's `iommu_group` link.
        let groupID = try system.iommuGroup(of: address).get()
        self.system = system
        self.address = address
        group = try system.openGroup(groupID)
        do throws(VFIOError) {
            guard group.status.contains(.viable) else {
                throw VFIOError(.notPermitted, rule: .VST_05, "\(group) is not viable: a function of it is bound to a kernel driver")
            }
            container = VFIOContainer(process: system.process, options: system.containerOptions)
            try group.setContainer(container)
            try container.setIOMMU(iommuType)
            device = try group.openDevice(address.description)
            info = try device.info()
            var regions: [VFIORegionInfo] = []
            for index in 0..<info.regionCount where index != VFIORegionIndex.vga.rawValue {
                regions.append(try device.regionInfo(index))
            }
            self.regions = regions
            var irqs: [VFIOIRQInfo] = []
            for index in 0..<info.irqCount { irqs.append(try device.irqInfo(index)) }
            self.irqs = irqs
            allocator = IOVAAllocator(ranges: try container.info().iovaRanges.map { $0.start...$0.end })
        } catch {
            group.close()
            throw error
        }
    }

    /// Allocates `size` bytes of host memory and maps them read-write at a fresh IOVA.
    public func mapDMA(size: UInt64) throws(VFIOError) -> DMARegion {
        let memory: HostMemory
        do throws(MemoryError) {
            memory = try system.process.allocate(size: size)
        } catch {
            throw VFIOError(error)
        }
        let rounded = memory.size.nonzeroBitCount == 1 ? memory.size : UInt64(1) << (64 - (memory.size - 1).leadingZeroBitCount)
        guard let iova = allocator.allocate(rounded) else {
            try? system.process.release(memory)
            throw VFIOError(.noSpace, rule: .VST_04, "\(address): IOVA ranges exhausted for \(size) bytes")
        }
        do throws(VFIOError) {
            try container.map(vaddr: memory.address, iova: iova, size: memory.size)
        } catch {
            try? system.process.release(memory)
            throw error
        }
        let region = DMARegion(memory: memory, iova: iova)
        mapped.append(region)
        return region
    }

    /// Unmaps and frees a region from `mapDMA`.
    public func unmapDMA(_ region: DMARegion) throws(VFIOError) {
        _ = try container.unmap(iova: region.iova, size: region.size)
        do throws(MemoryError) {
            try system.process.release(region.memory)
        } catch {
            throw VFIOError(error)
        }
        mapped.removeAll { $0.iova == region.iova }
    }

    /// The IOVA of a host address inside a mapped region (`to_iova`), nil outside them.
    public func iova(of pointer: UnsafeRawPointer) -> UInt64? {
        let host = UInt64(UInt(bitPattern: pointer))
        guard let region = mapped.first(where: { host >= $0.memory.address && host - $0.memory.address < $0.size }) else { return nil }
        return region.iova + (host - region.memory.address)
    }

    /// Turns bus mastering on or off (`PCI_COMMAND_MASTER`).
    public func setBusMaster(_ on: Bool) throws(VFIOError) {
        let command = try device.readConfig(UInt16.self, at: 0x04)
        try device.writeConfig(on ? command | 0x4 : command & ~0x4, at: 0x04)
    }

    /// Unmaps everything, closes the device and the group.
    public func close() {
        for region in mapped { try? unmapDMA(region) }
        device.close()
        group.close()
    }
}
