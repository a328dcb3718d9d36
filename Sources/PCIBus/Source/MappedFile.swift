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

    /// Opens and maps `path`; a missing or unreadable file is an errno-carrying error, and so is
    /// anything but a regular file (a FIFO, a device, a directory), refused before it is opened.
    init(path: String) throws(PCIBusError) {
        self.path = path
        // stat before open: opening a FIFO waits for a writer, and opening a device may act on it.
        var status = stat()
        guard stat(path, &status) == 0 else { throw Self.openError(path, Errno(rawValue: errno), "cannot stat") }
        try Self.requireRegularFile(status, path)
        let fd: FileDescriptor
        do {
            // Non-blocking, should the path have become a FIFO since the stat.
            fd = try FileDescriptor.open(FilePath(path), .readOnly, options: [.nonBlocking, .closeOnExec])
        } catch {
            throw Self.openError(path, (error as? Errno) ?? .ioError, "cannot open")
        }
        defer { try? fd.close() }
        guard fstat(fd.rawValue, &status) == 0 else {
            let error = Errno(rawValue: errno)
            throw PCIBusError(.fileUnreadable, error, "\(path): cannot stat the open file: \(error)")
        }
        try Self.requireRegularFile(status, path)
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

    private static func openError(_ path: String, _ error: Errno, _ what: String) -> PCIBusError {
        if error == .noSuchFileOrDirectory { return PCIBusError(.fileNotFound, error, "\(path): no such file") }
        return PCIBusError(.fileUnreadable, error, "\(path): \(what): \(error)")
    }

    /// Input files are regular files: anything else is bad input (`EX_DATAERR`), not an I/O failure.
    private static func requireRegularFile(_ status: stat, _ path: String) throws(PCIBusError) {
        let kind: String
        switch status.st_mode & S_IFMT {
        case S_IFREG: return
        case S_IFDIR: throw PCIBusError(.notRegularFile, .isDirectory, "\(path): is a directory, not a file")
        case S_IFIFO: kind = "a FIFO"
        case S_IFCHR: kind = "a character device"
        case S_IFBLK: kind = "a block device"
        case S_IFSOCK: kind = "a socket"
        default: kind = "not a regular file"
        }
        throw PCIBusError(
            .notRegularFile, .invalidArgument,
            "\(path): is \(kind); expected a regular file (an lspci -x dump or a manifest saved to disk)")
    }

    deinit {
        if let base = bytes.baseAddress { munmap(UnsafeMutableRawPointer(mutating: base), bytes.count) }
    }
}
