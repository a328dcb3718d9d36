import Glibc
import KernelRules
import Locking
import PCIBus
import SystemPackage

/// `vdev->ioeventfds_list` of one open device and the virqfds behind it
/// (`drivers/vfio/pci/vfio_pci_rdwr.c` `vfio_pci_ioeventfd`, `drivers/vfio/virqfd.c`): each entry
/// writes its `data` to (bar, pos) whenever its eventfd is signalled (VPCI-242).
///
/// The kernel runs the write from the eventfd's wakeup, in the signalling thread. A user-space
/// `write(2)` to an eventfd cannot call back into the simulation, so a watcher thread polls every
/// registered eventfd (and a control eventfd that wakes it when the list changes), drains a
/// signalled counter and performs the write; a registration finding its counter already non-zero
/// writes at once, as `vfio_virqfd_enable` does. Signals that arrive before the watcher drains the
/// counter coalesce into one write (the kernel writes once per wakeup). Writes run under the list's
/// lock, so once a removal returns its entry writes no more (`vfio_virqfd_disable` flushes).
final class VFIOPCIIoeventfds: Sendable {
    /// `VFIO_PCI_IOEVENTFD_MAX` (`vfio_pci_priv.h`).
    static let maximum = 1000

    struct Entry {
        let bar: Int
        let pos: UInt64
        let data: UInt64
        let count: Int
        let event: EventFD
        /// `test_mem`: a memory BAR, written only while memory decodes.
        let testMemory: Bool
    }

    struct State {
        var entries: [Entry] = []
        var control: EventFD?
        var watching = false
    }

    let state = PThreadMutex(State())

    var count: Int { state.withLock { $0.entries.count } }

    /// Every entry removed and the watcher stopped (the last close, `vfio_pci_core_close_device`).
    func removeAll() {
        state.withLock { state in
            state.entries.removeAll()
            state.watching = false
            state.control?.signal()
        }
    }

    /// Starts the watcher for `function` unless it runs; the caller holds `state`'s lock.
    fileprivate func startWatcher(_ state: inout State, for function: VFIOPCIFunction) throws(VFIOError) {
        if state.control == nil { state.control = try EventFD() }
        state.control!.signal()
        guard !state.watching else { return }
        let context = Unmanaged.passRetained(IoeventfdWatcher(owner: self, function: function)).toOpaque()
        var thread = pthread_t()
        let started = pthread_create(&thread, nil, { context in
            Unmanaged<IoeventfdWatcher>.fromOpaque(context!).takeRetainedValue().run()
            return nil
        }, context)
        guard started == 0 else {
            Unmanaged<IoeventfdWatcher>.fromOpaque(context).release()
            throw VFIOError(Errno(rawValue: started), rule: .VPCI_241, "\(function.address) IOEVENTFD: the watcher thread could not start")
        }
        pthread_detach(thread)
        state.watching = true
    }
}

/// The thread standing for the virqfds' wakeups: poll, drain, write.
private final class IoeventfdWatcher: @unchecked Sendable {
    let owner: VFIOPCIIoeventfds
    let function: VFIOPCIFunction

    init(owner: VFIOPCIIoeventfds, function: VFIOPCIFunction) {
        self.owner = owner
        self.function = function
    }

    func run() {
        while true {
            // The snapshot keeps every polled eventfd open until poll returns.
            guard let snapshot = owner.state.withLock({ $0.watching ? ($0.control!, $0.entries) : nil }) else { return }
            let (control, entries) = snapshot
            var fds = [pollfd(fd: control.fd, events: Int16(POLLIN), revents: 0)] + entries.map { pollfd(fd: $0.event.fd, events: Int16(POLLIN), revents: 0) }
            _ = poll(&fds, nfds_t(fds.count), -1)
            _ = control.read()
            owner.state.withLock { state in
                for entry in state.entries where entry.event.read() != nil { function.ioeventfdWrite(entry) }
            }
        }
    }
}

extension VFIOPCIFunction {
    /// `vfio_pci_ioeventfd_handler`: a memory BAR is written only while it decodes
    /// (`__vfio_pci_memory_enabled`: below D3hot, memory decode on in the virtual COMMAND), else
    /// the write is dropped silently; an I/O BAR always.
    func ioeventfdWrite(_ entry: VFIOPCIIoeventfds.Entry) {
        guard let backend else { return }
        if entry.testMemory {
            guard powerState < 3, config.withLock({ $0?.memoryEnabled ?? false }) else { return }
        }
        let mask: UInt64 = entry.count == 8 ? ~0 : (1 << (8 * UInt64(entry.count))) - 1
        backend.writeBAR(entry.bar, offset: entry.pos, width: entry.count, entry.data & mask)
    }
}

extension VFIODevice {
    /// `VFIO_DEVICE_IOEVENTFD` (`vfio_pci_ioctl_ioeventfd` in `vfio_pci_core.c`, then
    /// `vfio_pci_ioeventfd` in `vfio_pci_rdwr.c`), with `struct vfio_device_ioeventfd`'s fields:
    /// `offset` a region offset (`index << 40 | pos`), `flags` the access size (1, 2, 4 or 8), `fd`
    /// an eventfd to register, or -1 to remove the entry matching (bar, pos, data, size).
    ///
    /// VPCI-240, in order: `argsz < 28`; a flag above the size bits; not exactly one size bit or
    /// `fd < -1`; a region past BAR5; `pos + size` past the BAR (a zero-length BAR always); a range
    /// touching the MSI-X table; size 8 — each `EINVAL`. VPCI-241, under the list's lock: a match
    /// with `fd == -1` is removed (0), with an fd `EEXIST`; no match and `fd == -1` `ENODEV`; 1000
    /// entries `ENOSPC`; the fd not open `EBADF`, not an eventfd `EINVAL`; else added.
    public func ioeventfd(offset: UInt64, data: UInt64, flags: UInt32, fd: Int32, argsz: UInt32 = 32) throws(VFIOError) {
        let (backend, hardware) = try requireBackend("IOEVENTFD")
        function.runtimeGet()
        defer { function.runtimePut() }
        var what: String { "\(self) IOEVENTFD offset 0x\(String(offset, radix: 16)) flags 0x\(String(flags, radix: 16)) fd \(fd)" }
        guard argsz >= 28 else { throw VFIOError(.invalidArgument, rule: .VPCI_240, "\(what): argsz \(argsz) < 28") }
        guard flags & ~0xf == 0 else { throw VFIOError(.invalidArgument, rule: .VPCI_240, "\(what): flags beyond the size bits 0xf") }
        let count = Int(flags & 0xf)
        guard count.nonzeroBitCount == 1, fd >= -1 else {
            throw VFIOError(.invalidArgument, rule: .VPCI_240, "\(what): the size must be exactly one of 1, 2, 4, 8 and fd at least -1")
        }
        let index = offset >> 40
        let pos = offset & ((1 << 40) - 1)
        guard index <= 5 else { throw VFIOError(.invalidArgument, rule: .VPCI_240, "\(what): region \(index) is not a BAR (ioeventfds only write BARs)") }
        let bar = Int(index)
        let length = backend.barResource(bar)?.size ?? 0
        guard pos + UInt64(count) <= length else {
            throw VFIOError(.invalidArgument, rule: .VPCI_240, "\(what): \(count) bytes at 0x\(String(pos, radix: 16)) run past BAR\(bar)'s \(length) bytes")
        }
        if let table = hardware.msixTable(in: bar), pos + UInt64(count) > table.lowerBound, pos < table.upperBound {
            throw VFIOError(.invalidArgument, rule: .VPCI_240, "\(what): the range touches the MSI-X table, which ioeventfds may not write around")
        }
        guard count != 8 else {
            throw VFIOError(.invalidArgument, rule: .VPCI_240, "\(what): 8-byte ioeventfds are refused (vfio_pci_rdwr.c: count == 8)")
        }
        let list = function.ioeventfds
        let function = function
        try list.state.withLock { (state) throws(VFIOError) in
            if let match = state.entries.firstIndex(where: { $0.pos == pos && $0.bar == bar && $0.data == data && $0.count == count }) {
                guard fd == -1 else {
                    throw VFIOError(.fileExists, rule: .VPCI_241, "\(what): an ioeventfd for this BAR, offset, data and size exists (remove it with fd -1 first)")
                }
                state.entries.remove(at: match)
                state.control?.signal()
                return
            }
            guard fd >= 0 else { throw VFIOError(.operationNotSupportedByDevice, rule: .VPCI_241, "\(what): no ioeventfd matches BAR\(bar) 0x\(String(pos, radix: 16)) data 0x\(String(data, radix: 16)) size \(count) to remove") }
            guard state.entries.count < VFIOPCIIoeventfds.maximum else {
                throw VFIOError(.noSpace, rule: .VPCI_241, "\(what): the device already has \(VFIOPCIIoeventfds.maximum) ioeventfds (VFIO_PCI_IOEVENTFD_MAX)")
            }
            let event = try EventFD(referencing: fd, rule: .VPCI_241, what: what)
            let kind = backend.barResource(bar)?.kind
            try list.startWatcher(&state, for: function)
            state.entries.append(
                VFIOPCIIoeventfds.Entry(bar: bar, pos: pos, data: data, count: count, event: event, testMemory: kind != .io))
        }
    }

    /// The ioeventfds registered on the device.
    public var ioeventfdCount: Int { function.ioeventfds.count }
}
