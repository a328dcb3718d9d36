import Glibc
import KernelRules
import SystemPackage

/// Memory behind a RAM BAR: a `memfd`, mapped shared once for the model and again wherever a
/// program `mmap`s the BAR through its device fd, so every mapping sees the same bytes — as two
/// mappings of one BAR's physical pages do.
final class DeviceRAM: @unchecked Sendable {
    let memory: UnsafeMutableRawBufferPointer
    /// The memfd: what a program's mapping of the BAR maps.
    let fd: Int32

    /// Zeroed RAM of `size` bytes named after the BAR (`/proc/self/maps` shows `memfd:<name>`);
    /// nil when the kernel refuses a memfd or the mapping (the BAR is then not mappable).
    init?(size: Int, name: String) {
        let fd = systemMemfdCreate(name, UInt32(MFD_CLOEXEC_FLAG))
        guard fd >= 0 else { return nil }
        guard ftruncate(fd, off_t(size)) == 0, let raw = mmap(nil, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0), raw != MAP_FAILED else {
            Glibc.close(fd)
            return nil
        }
        self.fd = fd
        memory = UnsafeMutableRawBufferPointer(start: raw, count: size)
    }

    deinit {
        munmap(memory.baseAddress, memory.count)
        Glibc.close(fd)
    }
}

private let MFD_CLOEXEC_FLAG: Int32 = 1

/// `int memfd_create(const char *name, unsigned int flags)` (glibc 2.27), not in the Glibc module.
@_silgen_name("memfd_create")
private func systemMemfdCreate(_ name: UnsafePointer<CChar>, _ flags: UInt32) -> Int32
