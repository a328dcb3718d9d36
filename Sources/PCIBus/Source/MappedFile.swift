import SystemPackage

#if canImport(Glibc)
    import Glibc
#endif

/// A file mapped read-only into memory (`mmap`): dumps of 100+ MB are scanned and cut without
/// being copied onto the heap. Unmapped when the last reference goes.
final class MappedFile: @unchecked Sendable {
    let path: String
    /// The file's bytes; valid for the lifetime of this object, never written.
    let bytes: UnsafeBufferPointer<UInt8>

    /// Opens and maps `path`; a missing or unreadable file is an errno-carrying error.
    init(path: String) throws(PCIBusError) {
        self.path = path
        let fd: FileDescriptor
        do {
            fd = try FileDescriptor.open(FilePath(path), .readOnly)
        } catch {
            let error = (error as? Errno) ?? .ioError
            if error == .noSuchFileOrDirectory {
                throw PCIBusError(.fileNotFound, error, "\(path): no such file")
            }
            throw PCIBusError(.fileUnreadable, error, "\(path): cannot open: \(error)")
        }
        defer { try? fd.close() }
        var status = stat()
        guard fstat(fd.rawValue, &status) == 0, status.st_mode & S_IFMT == S_IFREG else {
            throw PCIBusError(.fileUnreadable, .invalidArgument, "\(path): not a regular file")
        }
        let size = Int(status.st_size)
        guard size > 0 else {
            bytes = UnsafeBufferPointer(start: nil, count: 0)
            return
        }
        guard let address = mmap(nil, size, PROT_READ, MAP_PRIVATE, fd.rawValue, 0), address != MAP_FAILED else {
            throw PCIBusError(.fileUnreadable, Errno(rawValue: errno), "\(path): cannot map: \(Errno(rawValue: errno))")
        }
        bytes = UnsafeBufferPointer(start: address.assumingMemoryBound(to: UInt8.self), count: size)
    }

    deinit {
        if let base = bytes.baseAddress { munmap(UnsafeMutableRawPointer(mutating: base), bytes.count) }
    }
}
