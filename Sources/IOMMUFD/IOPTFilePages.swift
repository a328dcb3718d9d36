import Glibc
import KernelRules
import SystemPackage
import UserMemory

/// The file behind an `IOPT_ADDRESS_FILE` `iopt_pages` (`IOMMU_IOAS_MAP_FILE`, IOMMUFD-220): a
/// reference to the file (`get_file`: a duplicate of the caller's fd) and its pages mapped
/// shared into the process, so areas, domains and accesses reach them by address as they reach
/// a user range's. `memfd_pin_folios` pins only shmem (memfd) and hugetlbfs pages inside the
/// file, which `checkPinnable` enforces when the pages are first pinned.
final class IOPTFilePages: @unchecked Sendable {
    /// `TMPFS_MAGIC`, `HUGETLBFS_MAGIC`.
    private static let pinnableFilesystems: Set<Int> = [0x0102_1994, 0x9584_58f6]

    private let descriptor: Int32
    /// The mapping `[base, base + mappedLength)`, aligned to the file's block (2 MiB for hugetlbfs).
    private let base: UnsafeMutableRawPointer
    private let mappedLength: Int
    /// The first byte of the page holding `start`, in the process, and the pages' length.
    let address: UInt64
    let span: UInt64
    /// The file offset of `address`.
    private let offset: UInt64

    /// `fget(fd)` (`EBADF`) and the mapping; `EINVAL` when the file cannot be mapped shared.
    init(fd: Int32, start: UInt64, length: UInt64, writable: Bool) throws(IOMMUFDError) {
        let what = "IOAS_MAP_FILE fd \(fd)"
        var status = stat()
        guard fstat(fd, &status) == 0 else { throw IOMMUFDError(.badFileDescriptor, rule: .IOMMUFD_220, "\(what): not an open file") }
        offset = start & ~(hostPageSize - 1)
        span = ((start - offset) + length + hostPageSize - 1) & ~(hostPageSize - 1)
        let block = max(UInt64(status.st_blksize), hostPageSize)
        // mmap takes an off_t offset and a size_t length: both must stay below 2^63.
        let bound = UInt64(Int64.max) / 4
        guard block.nonzeroBitCount == 1, block <= bound, span <= bound, offset <= bound else {
            throw IOMMUFDError(.invalidArgument, rule: .IOMMUFD_220, "\(what): bytes 0x\(String(start, radix: 16)) + 0x\(String(length, radix: 16)) lie past any file offset")
        }
        let mapStart = offset & ~(block - 1)
        let mapEnd = (offset + span + block - 1) & ~(block - 1)
        let duplicate = fcntl(fd, F_DUPFD_CLOEXEC, 0)
        guard duplicate >= 0 else { throw IOMMUFDError(.badFileDescriptor, rule: .IOMMUFD_220, "\(what): cannot take a reference (\(String(cString: strerror(errno))))") }
        let protection = PROT_READ | (writable ? PROT_WRITE : 0)
        guard let mapped = mmap(nil, Int(mapEnd - mapStart), protection, MAP_SHARED, duplicate, off_t(mapStart)), mapped != MAP_FAILED else {
            let reason = String(cString: strerror(errno))
            close(duplicate)
            throw IOMMUFDError(.invalidArgument, rule: .IOMMUFD_220, "\(what): its pages cannot be mapped shared\(writable ? " for writing" : "") (\(reason))")
        }
        descriptor = duplicate
        base = mapped
        mappedLength = Int(mapEnd - mapStart)
        address = UInt64(UInt(bitPattern: mapped)) + (offset - mapStart)
    }

    deinit {
        munmap(base, mappedLength)
        close(descriptor)
    }

    /// `memfd_pin_folios`' refusals (`EINVAL`): a file of another filesystem than shmem or
    /// hugetlbfs, or pages past its end.
    func checkPinnable() throws(IOMMUFDError) {
        // struct statfs begins with `__fsword_t f_type`; 120 bytes on 64-bit Linux, room kept.
        var filesystem = [Int](repeating: 0, count: 32)
        var status = stat()
        guard systemFstatfs(descriptor, &filesystem) == 0, fstat(descriptor, &status) == 0 else {
            throw IOMMUFDError(.invalidArgument, rule: .IOMMUFD_220, "IOAS_MAP_FILE: the file cannot be examined (\(String(cString: strerror(errno))))")
        }
        guard Self.pinnableFilesystems.contains(filesystem[0] & 0xffff_ffff) else {
            throw IOMMUFDError(.invalidArgument, rule: .IOMMUFD_220, "IOAS_MAP_FILE: memfd_pin_folios pins shmem and hugetlbfs files only (f_type 0x\(String(filesystem[0], radix: 16)))")
        }
        let size = UInt64(max(status.st_size, 0))
        guard offset + span <= (size + hostPageSize - 1) & ~(hostPageSize - 1) else {
            throw IOMMUFDError(.invalidArgument, rule: .IOMMUFD_220, "IOAS_MAP_FILE: pages up to file offset 0x\(String(offset + span, radix: 16)) are past the file's end (0x\(String(size, radix: 16)) bytes)")
        }
    }
}

/// `int fstatfs(int fd, struct statfs *buf)`, which the Glibc module does not export.
@_silgen_name("fstatfs")
private func systemFstatfs(_ fd: Int32, _ buffer: UnsafeMutablePointer<Int>) -> Int32
