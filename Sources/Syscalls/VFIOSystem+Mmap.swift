import CMMIOTrap
import Glibc
import KernelRules
import SystemPackage
import UserMemory
import VFIO

extension VFIOSystem {
    /// `mmap(address, length, protection, flags, fd, offset)` of a device fd's region
    /// (`vfio_pci_core_mmap`, VPCI-100), placed where `mmap(2)` would place it (`MAP_FIXED` and
    /// hints honoured): device RAM is its memfd mapped shared, so every mapping and the device see
    /// the same bytes, zapped at vfio-pci's zap points and faulted back in (`DeviceRAMMappings`);
    /// a register BAR is mapped `PROT_NONE` and every load and store to it traps
    /// and becomes one access of its exact width (`CMMIOTrap`); an access while memory decode is
    /// off is `SIGBUS` (VPCI-102). The mapping, or nil with `errno` set: `EBADF` for a fd that is
    /// no VFIO file, `ENODEV` for a container or group (no `mmap` file operation), `EINVAL` for a
    /// zero length or an offset off a page boundary (`mmap(2)`) and for VPCI-100's refusals.
    public func mmap(
        _ address: UnsafeMutableRawPointer?, _ length: Int, _ protection: Int32, _ flags: Int32, _ fd: Int32, _ offset: Int64
    ) -> UnsafeMutableRawPointer? {
        let result = Result { () throws(VFIOError) -> UnsafeMutableRawPointer in
            guard let file = VFIOFileTable.shared.file(fd) else {
                throw VFIOError(.badFileDescriptor, rule: .none, "mmap: fd \(fd) is not a VFIO file")
            }
            let device = try file.device("mmap", fd: fd)
            let unsignedOffset = UInt64(bitPattern: offset)
            guard length > 0, unsignedOffset % hostPageSize == 0 else {
                throw VFIOError(.invalidArgument, rule: .none, "mmap \(device): a length of 0 or an offset (0x\(String(unsignedOffset, radix: 16))) off a page boundary")
            }
            let rounded = (UInt64(length) + hostPageSize - 1) & ~(hostPageSize - 1)
            let shared = flags & 0x3 == MAP_SHARED || flags & 0x3 == 0x3  // MAP_SHARED or MAP_SHARED_VALIDATE
            let target = try device.mmapTarget(UInt32(truncatingIfNeeded: unsignedOffset >> 40), offset: unsignedOffset & ((1 << 40) - 1), length: rounded, shared: shared)
            let placement = flags & (MAP_FIXED | Self.mapFixedNoReplace)
            switch target {
            case .memory(let file, let within, _):
                let mapped = try place(address, length, protection, MAP_SHARED | placement, file, off_t(within), device)
                do throws(VFIOError) {
                    // Zapped by vfio-pci's zap points, faulted back in on access (VPCI-102, VPCI-103).
                    try DeviceRAMMappings.shared.add(start: UInt(bitPattern: mapped), length: Int(rounded), protection: protection, device: device)
                } catch {
                    Glibc.munmap(mapped, length)
                    throw error
                }
                process.addDeviceMapping(start: UInt64(UInt(bitPattern: mapped)), length: rounded, directlyAccessible: true)
                return mapped
            case .registers(let bar):
                let mapped = try place(address, length, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | placement, -1, 0, device)
                let start = UInt(bitPattern: mapped)
                do throws(VFIOError) {
                    try RegisterWindows.shared.add(start: start, length: Int(rounded), device: device, bar: bar, offset: unsignedOffset & ((1 << 40) - 1), writable: protection & PROT_WRITE != 0)
                } catch {
                    Glibc.munmap(mapped, length)
                    throw error
                }
                process.addDeviceMapping(start: UInt64(start), length: rounded, directlyAccessible: false)
                return mapped
            }
        }
        return syscallReturn(result.map { Optional.some($0) }, failure: nil)
    }

    /// `munmap(address, length)`: trapped register windows and device mappings in the range go;
    /// pages still pinned for DMA stay mapped until their last `UNMAP_DMA` (a pinned page outlives
    /// its mapping — the program should not touch them again); the rest is unmapped. 0, or -1
    /// with `errno` set (`EINVAL` for an address off a page boundary or a zero length).
    @discardableResult
    public func munmap(_ address: UnsafeMutableRawPointer?, _ length: Int) -> Int32 {
        let start = UInt64(UInt(bitPattern: address))
        guard length > 0, start % hostPageSize == 0 else {
            Glibc.errno = EINVAL
            return -1
        }
        let rounded = (UInt64(length) + hostPageSize - 1) & ~(hostPageSize - 1)
        RegisterWindows.shared.remove(start: UInt(start), length: Int(rounded))
        DeviceRAMMappings.shared.remove(start: UInt(start), length: Int(rounded))
        _ = vfiokit_trap_remove(UInt(start), Int(rounded))
        for piece in process.unmapping(start: start, length: rounded) {
            if Glibc.munmap(UnsafeMutableRawPointer(bitPattern: UInt(piece.start)), Int(piece.end - piece.start)) != 0 { return -1 }
        }
        return 0
    }

    /// `MAP_FIXED_NOREPLACE` (Linux 4.17), not in the Glibc module.
    private static let mapFixedNoReplace: Int32 = 0x100000

    private func place(
        _ address: UnsafeMutableRawPointer?, _ length: Int, _ protection: Int32, _ flags: Int32, _ fd: Int32, _ offset: off_t, _ device: VFIODevice
    ) throws(VFIOError) -> UnsafeMutableRawPointer {
        guard let mapped = Glibc.mmap(address, length, protection, flags, fd, offset), mapped != MAP_FAILED else {
            throw VFIOError(Errno(rawValue: Glibc.errno), rule: .none, "mmap \(device): the kernel refused the mapping of \(length) bytes")
        }
        mappingPlaced(mapped, length)
        return mapped
    }

    /// A mapping now lies at `[address, address + length)` — a BAR's, or the program's own
    /// (`MAP_FIXED` over what was there): the trapped windows and device mappings it replaced end.
    public func mappingPlaced(_ address: UnsafeMutableRawPointer, _ length: Int) {
        RegisterWindows.shared.remove(start: UInt(bitPattern: address), length: length)
        process.replacing(start: UInt64(UInt(bitPattern: address)), length: UInt64(length))
    }
}
