import Dispatch
import Locking
import SystemPackage

#if canImport(Glibc)
    import Glibc
#endif

/// Loads a large dump on every core: the file is cut at blank lines (where libpci's reader
/// forgets the current function, so each piece parses exactly as it would in place), each piece
/// goes through its own libpci dump access, once the line scanner that locates errors has passed
/// the whole file. Small files, and machines with one core, take the single-access path, on the
/// calling thread.
enum ParallelDumpLoad {
    /// Files smaller than this are not worth splitting.
    static let splitThreshold = 4 << 20

    struct Outcome: Sendable {
        let scanner: DumpFileScanner
        /// Devices of every piece, in file order, and the access of the first piece (for names).
        let devices: [LibPCIDevice]
        let access: LibPCIAccess
    }

    static func load(_ file: MappedFile) throws(PCIBusError) -> Outcome {
        let path = file.path
        let cores = Int(sysconf(Int32(_SC_NPROCESSORS_ONLN)))
        let ranges =
            file.bytes.count >= splitThreshold ? pieces(of: file.bytes, count: max(1, min(cores, 8))) : [0..<file.bytes.count]
        let scanResult = PThreadMutex<Result<DumpFileScanner, PCIBusError>?>(nil)
        let pieceResults = PThreadMutex<[Int: Result<(LibPCIAccess, [LibPCIDevice]), PCIBusError>]>([:])
        // One piece: scan and parse on this thread, so loading a machine leaves no worker threads
        // behind in the process (a program under `vfiokit run` forks; a fork from a process with
        // idle threads is one ThreadSanitizer refuses).
        let run: @Sendable (Int) -> Void = { task in
            if task == 0 {
                let result = Result { () throws(PCIBusError) in
                    try DumpFileScanner.scan(path: path, bytes: file.bytes, validatingRows: false)
                }
                scanResult.withLock { $0 = result }
                return
            }
            let range = ranges[task - 1]
            let result = Result { () throws(PCIBusError) -> (LibPCIAccess, [LibPCIDevice]) in
                if ranges.count == 1 {
                    let access = try LibPCIAccess(method: .dump(path: path))
                    return (access, try access.devices(withKernelAttributes: false))
                }
                let piece = try TemporaryFile.write(UnsafeBufferPointer(rebasing: file.bytes[range]), describing: path)
                defer { unlink(piece) }
                let access = try LibPCIAccess(method: .dump(path: piece))
                return (access, try access.devices(withKernelAttributes: false))
            }
            pieceResults.withLock { $0[task - 1] = result }
        }
        // The scanner's verdict first, before libpci reads a byte: it names the line, and it
        // refuses what libpci's reader would crash on (a row offset past config space).
        run(0)
        let scanner = try scanResult.withLock { $0! }.get()
        if ranges.count == 1 {
            run(1)
        } else {
            DispatchQueue.concurrentPerform(iterations: ranges.count) { run($0 + 1) }
        }
        var devices: [LibPCIDevice] = []
        var first: LibPCIAccess? = nil
        for index in ranges.indices {
            let piece = pieceResults.withLock { $0[index]! }
            if case .failure(let libpciError) = piece {
                // libpci only says "Malformed line": the full scan says which line and why.
                _ = try DumpFileScanner.scan(path: path, bytes: file.bytes, validatingRows: true)
                guard libpciError.kind == .libpci else { throw libpciError }
                throw PCIBusError(.dumpRejected, .invalidArgument, "\(path): rejected by libpci's dump reader: \(libpciError.message)")
            }
            let (access, pieceDevices) = try piece.get()
            if first == nil { first = access }
            devices += pieceDevices
        }
        return Outcome(scanner: scanner, devices: devices, access: first!)
    }

    /// Cut points at blank lines near each `count`-th of the file.
    static func pieces(of bytes: UnsafeBufferPointer<UInt8>, count: Int) -> [Range<Int>] {
        var cuts = [0]
        for part in 1..<max(count, 1) {
            var position = max(bytes.count * part / count, cuts.last!)
            while position + 1 < bytes.count, !(bytes[position] == 0x0a && bytes[position + 1] == 0x0a) { position += 1 }
            guard position + 1 < bytes.count else { break }
            cuts.append(position + 2)
        }
        cuts.append(bytes.count)
        return zip(cuts, cuts.dropFirst()).compactMap { $0 < $1 ? $0..<$1 : nil }
    }
}

/// A private temporary file for libpci to read (it only reads paths), in memory (`/dev/shm`)
/// where the system has it.
enum TemporaryFile {
    static let directory = access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp"

    static func write(_ bytes: UnsafeBufferPointer<UInt8>, describing original: String) throws(PCIBusError) -> String {
        var template = Array("\(directory)/vfiokit-dump-XXXXXX".utf8CString)
        let fd = mkstemp(&template)
        guard fd >= 0 else {
            throw PCIBusError(.fileUnreadable, .ioError, "\(original): cannot create a temporary copy for libpci")
        }
        defer { close(fd) }
        let path = String(decoding: template.dropLast().map { UInt8(bitPattern: $0) }, as: UTF8.self)
        var offset = 0
        while offset < bytes.count {
            let written = Glibc.write(fd, bytes.baseAddress! + offset, bytes.count - offset)
            guard written > 0 else {
                unlink(path)
                throw PCIBusError(.fileUnreadable, .ioError, "\(original): cannot write a temporary copy for libpci")
            }
            offset += written
        }
        return path
    }
}
