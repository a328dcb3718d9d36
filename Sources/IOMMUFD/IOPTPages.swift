import SystemPackage
import IOMMU
import KernelRules
import UserMemory

/// `struct iopt_pages`: the user memory one `IOMMU_IOAS_MAP` named — `npages` pages from the
/// page-aligned `uptr`, writable or not — shared by every area that maps any part of it (the MAP's
/// own area and `IOMMU_IOAS_COPY`'s, IOMMUFD-224). It is pinned once, however many areas and
/// domains use it (IOMMUFD-400): on the first area that needs its pages in a domain, and
/// unpinned when the last such area goes (IOMMUFD-404). The simulation pins the whole span at
/// once, where the kernel pins page by page as areas need them; the charge is the same for every
/// MAP, and a COPY of part of a range whose source area is gone keeps the rest pinned with it.
/// Guarded by the owning context's lock.
final class IOPTPages: @unchecked Sendable {
    /// `pages->uptr`: the user VA rounded down to a page.
    let uptr: UInt64
    /// `npages * PAGE_SIZE`.
    let span: UInt64
    /// `pages->writable`: created by a MAP with `IOMMU_IOAS_MAP_WRITEABLE`.
    let writable: Bool
    let process: ProcessMemory
    /// `pages->file` (`IOPT_ADDRESS_FILE`, `IOMMU_IOAS_MAP_FILE`): the file's pages, mapped
    /// shared into the process at `uptr`; nil for a user address range.
    let file: IOPTFilePages?
    /// Areas whose IOAS has a domain (each needs the pages pinned).
    private var users = 0

    /// `iopt_alloc_user_pages` (IOMMUFD-211): `EOVERFLOW` when the range wraps, `EINVAL` for
    /// length 0 or one the iommu API's `size_t` cannot take.
    init(userVA: UInt64, length: UInt64, writable: Bool, process: ProcessMemory) throws(IOMMUFDError) {
        guard userVA <= .max - length else {
            throw IOMMUFDError(.overflow, rule: .IOMMUFD_211, "IOAS_MAP: user_va \(hex(userVA)) + length \(hex(length)) wraps past 2^64")
        }
        guard length != 0, length <= .max - hostPageSize else {
            throw IOMMUFDError(.invalidArgument, rule: .IOMMUFD_211, "IOAS_MAP: length \(hex(length)) is 0 or past SIZE_MAX - PAGE_SIZE")
        }
        uptr = userVA & ~(hostPageSize - 1)
        let startByte = userVA - uptr
        span = (startByte + length + hostPageSize - 1) & ~(hostPageSize - 1)
        self.writable = writable
        self.process = process
        file = nil
    }

    /// `iopt_alloc_file_pages` (IOMMUFD-220): `length` bytes of `file` from byte `start`, the
    /// pages kept at `file.address`.
    init(file: IOPTFilePages, writable: Bool, process: ProcessMemory) {
        uptr = file.address
        span = file.span
        self.writable = writable
        self.process = process
        self.file = file
    }

    /// The access a pin asks for: `FOLL_WRITE` when the pages were created writable (IOMMUFD-401).
    private var access: IOAccess { writable ? .readWrite : .read }

    /// An area needs the pages in a domain: pins them on the first (`EFAULT` for memory the
    /// process does not have mapped that way — a BAR it mapped too, as GUP refuses `VM_PFNMAP` —
    /// `ENOMEM` over `RLIMIT_MEMLOCK`, IOMMUFD-401/403).
    func pin() throws(IOMMUFDError) {
        if users == 0 {
            try file?.checkPinnable()
            try lowerCall { () throws(MemoryError) in
                try process.pin(vaddr: uptr, size: span, access: access, allowingDeviceMemory: false)
            }
        }
        users += 1
    }

    /// The area no longer needs them; the last one unpins (IOMMUFD-404).
    func unpin() {
        users -= 1
        if users == 0 { process.unpin(vaddr: uptr, size: span) }
    }
}
