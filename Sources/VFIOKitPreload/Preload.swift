import CPreload
import Glibc
import KernelRules
import Machine
import PCIBus
import Syscalls
import SystemPackage
import UserMemory
import VFIO

/// The Swift half of the preload library (`libvfiokit-preload.so`): the simulated machine of this
/// process and the entry points the C half (`CPreload`) hands a program's VFIO system calls to.
/// Every call goes through the same system-call boundary (`Syscalls`) the Swift facade uses.
enum Preload {
    /// Set once by `start`, under the C half's start lock, before it publishes `started`.
    nonisolated(unsafe) static var machine: SimulatedMachine?

    static var vfio: VFIOSystem? { machine?.vfio }

    /// `machine.vfio` unretained, for the per-call entry points (`ioctl`, `pread`, `pwrite`): the
    /// machine holds it for the life of the process, and a retain per call would take the runtime's
    /// slow path (groups refer to the system weakly, so its count lives in a side table).
    nonisolated(unsafe) static var unretainedVFIO: Unmanaged<VFIOSystem>?

    /// `body` on the machine's VFIO system, or `failure` with `EBADF` before the machine runs.
    static func withVFIO<Result>(else failure: Result, _ body: (VFIOSystem) -> Result) -> Result {
        guard let unretainedVFIO else { return badDescriptor(failure) }
        return unretainedVFIO._withUnsafeGuaranteedRef(body)
    }

    /// `machine`: a `devices/` name or directory, `dump:FILE` (an `lspci -xxxx` dump) or
    /// `sysfs:DIR` (a sysfs root); `binding`: functions bound to vfio-pci. The sysfs and /dev tree
    /// is written to a new directory whose path goes to `root`.
    static func start(_ source: String, binding: [String], root: UnsafeMutableBufferPointer<CChar>) throws(MachineError) {
        var addresses: [PCIAddress] = []
        for text in binding {
            guard let address = PCIAddress(parsing: text) else {
                throw MachineError(.invalidArgument, rule: .none, "bind \(text): not a PCI address (DDDD:BB:DD.F)")
            }
            addresses.append(address)
        }
        let process = ProcessMemory.wholeProcess()
        let loaded: SimulatedMachine
        if source.hasPrefix("dump:") {
            loaded = try SimulatedMachine.load(dump: String(source.dropFirst(5)), attaching: [], binding: addresses, process: process)
        } else if source.hasPrefix("sysfs:") {
            loaded = try SimulatedMachine.load(sysfs: String(source.dropFirst(6)), binding: addresses, process: process)
        } else {
            loaded = try SimulatedMachine.load(machine: source, binding: addresses, process: process)
        }
        let directory = try makeTreeDirectory()
        do throws(VFIOError) {
            try SysfsTree.write(loaded.vfio, under: directory)
        } catch {
            throw MachineError(error.errno, rule: error.rule, error.message, cause: error)
        }
        guard directory.utf8.count < root.count else { throw MachineError(.fileNameTooLong, rule: .none, "sysfs tree path \(directory) is too long") }
        _ = directory.withCString { strcpy(root.baseAddress!, $0) }
        VFIODescriptors.observe { fd, isVFIO in vfiokit_preload_mark(fd, isVFIO ? 1 : 0) }
        // `vfiokit run --iommufd-test`: a kernel built with CONFIG_IOMMUFD_TEST (iommufd.md §8).
        loaded.vfio.iommufdSelftest = getenv("VFIOKIT_IOMMUFD_TEST").map { String(cString: $0) == "1" } ?? false
        machine = loaded
        unretainedVFIO = Unmanaged.passUnretained(loaded.vfio)
    }

    /// `$TMPDIR/vfiokit-XXXXXX`, private to this run (removed at exit by the process that made it).
    private static func makeTreeDirectory() throws(MachineError) -> String {
        let base = getenv("TMPDIR").map { String(cString: $0) } ?? "/tmp"
        var template = Array((base + "/vfiokit-XXXXXX").utf8CString)
        guard mkdtemp(&template) != nil else {
            throw MachineError(Errno(rawValue: Glibc.errno), rule: .none, "mkdtemp \(base)/vfiokit-XXXXXX failed: the sysfs tree has nowhere to go")
        }
        return String(decoding: template.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    /// A `pread`/`pwrite` of `count` bytes at `offset` on the machine, or -1 with `errno` set:
    /// `EBADF` before the machine runs, `EINVAL` for a negative offset or a count past `SSIZE_MAX`.
    static func regionIO(_ count: Int, _ offset: Int64, _ body: (VFIOSystem) -> Int) -> Int {
        withVFIO(else: -1) { vfio in
            guard offset >= 0, count >= 0 else {
                Glibc.errno = EINVAL
                return -1
            }
            return body(vfio)
        }
    }

    static func badDescriptor<T>(_ failure: T) -> T {
        Glibc.errno = EBADF
        return failure
    }
}

/// The table of entry points the C half calls (`struct vfiokit_simulation`).
nonisolated(unsafe) private let simulation: UnsafeMutablePointer<vfiokit_simulation> = {
    let table = UnsafeMutablePointer<vfiokit_simulation>.allocate(capacity: 1)
    table.initialize(
        to: vfiokit_simulation(
            start: { source, bind, count, root, rootSize, reason, reasonSize in
                let machine = source.map { String(cString: $0) } ?? (getenv("VFIOKIT_MACHINE").map { String(cString: $0) } ?? "default")
                let binding = (0..<Int(max(count, 0))).compactMap { bind?[$0].map { String(cString: $0) } }
                do throws(MachineError) {
                    try Preload.start(machine, binding: binding, root: UnsafeMutableBufferPointer(start: root, count: rootSize))
                    return 0
                } catch {
                    if let reason, reasonSize > 0 {
                        let message = Array("\(error)".utf8CString.prefix(reasonSize - 1)) + [0]
                        message.withUnsafeBufferPointer { _ = memcpy(reason, $0.baseAddress!, $0.count) }
                    }
                    return -1
                }
            },
            open: { path, flags in
                guard let vfio = Preload.vfio, let path else { return Preload.badDescriptor(-1) }
                return vfio.open(String(cString: path), flags: flags)
            },
            ioctl: { fd, request, argument in
                Preload.withVFIO(else: -1) { $0.ioctl(fd, request, argument) }
            },
            pread: { fd, buffer, count, offset in
                Preload.regionIO(count, offset) { $0.pread(fd, userBuffer: UInt(bitPattern: buffer), count: count, UInt64(offset)) }
            },
            pwrite: { fd, buffer, count, offset in
                Preload.regionIO(count, offset) { $0.pwrite(fd, userBuffer: UInt(bitPattern: buffer), count: count, UInt64(offset)) }
            },
            mmap: { address, length, protection, flags, fd, offset in
                guard let vfio = Preload.vfio else { return Preload.badDescriptor(nil) }
                guard length >= 0 else {  // a size_t past SSIZE_MAX: more than any address space
                    Glibc.errno = ENOMEM
                    return nil
                }
                return vfio.mmap(address, length, protection, flags, fd, offset)
            },
            munmap: { address, length in
                guard let vfio = Preload.vfio else { return Glibc.munmap(address, length) }
                guard length >= 0 else {  // past TASK_SIZE
                    Glibc.errno = EINVAL
                    return -1
                }
                return vfio.munmap(address, length)
            },
            placed: { address, length in
                guard let address, length >= 0 else { return }
                Preload.vfio?.mappingPlaced(address, length)
            },
            close: { fd, alreadyClosed in
                guard let vfio = Preload.vfio else { return Preload.badDescriptor(-1) }
                switch vfio.closeResult(fd, closeDescriptor: alreadyClosed == 0) {
                case .success(let value): return value
                case .failure(let error):
                    Glibc.errno = error.errno.rawValue
                    return -1
                }
            },
            duplicate: { fd, newfd in VFIODescriptors.duplicate(fd, as: newfd) }
        ))
    return table
}()

/// Where the C half finds the simulation.
@_cdecl("vfiokit_preload_simulation")
public func vfiokitPreloadSimulation() -> UnsafePointer<vfiokit_simulation> { UnsafePointer(simulation) }
