import CMMIOTrap
import Glibc
import KernelRules
import IOMMU
import Locking
import SystemPackage

/// The user address space a container pins from (`current->mm` of the task calling MAP_DMA): the
/// host memory the process allocated, which pages are pinned for DMA, and the locked-memory
/// accounting (`mm->locked_vm`) against `RLIMIT_MEMLOCK` (T1-20, T1-91). Devices can only ever
/// reach memory that was pinned here, so nothing outside what a driver granted is touched.
///
/// Two address spaces: `.allocations` pins only what `allocate` handed out (a Swift driver of
/// the simulation), `.wholeProcess` pins any mapping of the real process as `pin_user_pages`
/// does (an unmodified C program under `vfiokit run`), plus the device BARs it mapped
/// (`VM_PFNMAP`, pinned without being charged).
public final class ProcessMemory: Sendable {
    public enum AddressSpace: Sendable {
        case allocations
        case wholeProcess
    }

    fileprivate struct Region {
        let memory: HostMemory
        var pins = 0
    }

    /// One pin of a range outside the allocations (`.wholeProcess`).
    fileprivate struct Pin {
        let start: UInt64
        let end: UInt64
        /// Inside a device mapping: `VM_PFNMAP`, not charged to `locked_vm`.
        let device: Bool
    }

    fileprivate struct State {
        /// Sorted by address, disjoint.
        var regions: [Region] = []
        var pins: [Pin] = []
        /// Device BAR mappings `[start, end)`, and whether the device memory there is RAM the
        /// simulation may touch directly (a register BAR traps every access).
        var deviceMappings: [(start: UInt64, end: UInt64, directlyAccessible: Bool)] = []
        /// Pinned pages the program unmapped: kept until their last pin goes, as pinned pages are.
        var retained: [(start: UInt64, end: UInt64)] = []
        var lockedBytes: UInt64 = 0
        var limit: UInt64?
    }

    private let state: PThreadMutex<State>
    public let addressSpace: AddressSpace

    /// `lockedMemoryLimit` is `RLIMIT_MEMLOCK` in bytes; nil is `RLIM_INFINITY` (the default, as
    /// for a task with `CAP_IPC_LOCK`).
    public init(lockedMemoryLimit: UInt64? = nil, addressSpace: AddressSpace = .allocations) {
        state = PThreadMutex(State(limit: lockedMemoryLimit))
        self.addressSpace = addressSpace
    }

    /// This process's whole address space, with its own `RLIMIT_MEMLOCK` — unlimited with
    /// `CAP_IPC_LOCK` (`vfio_pin_pages_remote` skips the check for a task that has it).
    public static func wholeProcess() -> ProcessMemory {
        var limit = rlimit()
        _ = systemGetrlimit(8, &limit)  // RLIMIT_MEMLOCK
        let unlimited = limit.rlim_cur == rlim_t.max || hasCapabilityIPCLock()  // RLIM_INFINITY
        return ProcessMemory(lockedMemoryLimit: unlimited ? nil : UInt64(limit.rlim_cur), addressSpace: .wholeProcess)
    }

    /// `capable(CAP_IPC_LOCK)`: bit 14 of `CapEff` in `/proc/self/status`.
    private static func hasCapabilityIPCLock() -> Bool {
        guard let file = fopen("/proc/self/status", "r") else { return false }
        defer { fclose(file) }
        var line = [CChar](repeating: 0, count: 256)
        while fgets(&line, Int32(line.count), file) != nil {
            let text = String(decoding: line.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
            if text.hasPrefix("CapEff:"), let mask = UInt64(text.dropFirst(7).trimmingSpaces, radix: 16) { return mask & (1 << 14) != 0 }
        }
        return false
    }

    /// Bytes charged to `locked_vm` by pinned DMA mappings (each mapping is charged, T1-91).
    public var lockedBytes: UInt64 { state.withLock { $0.lockedBytes } }

    /// `RLIMIT_MEMLOCK` in bytes (nil: unlimited). Lowering it below what is locked only refuses new pins.
    public var lockedMemoryLimit: UInt64? {
        get { state.withLock { $0.limit } }
        set { state.withLock { $0.limit = newValue } }
    }

    /// `mmap`s `size` bytes (rounded up to the page size) of anonymous memory for DMA.
    public func allocate(size: UInt64, hugePages: Bool = false, writable: Bool = true) throws(MemoryError) -> HostMemory {
        let memory = try HostMemory(size: size, hugePages: hugePages, writable: writable)
        state.withLock { state in
            let index = state.regions.firstIndex { $0.memory.address > memory.address } ?? state.regions.count
            state.regions.insert(Region(memory: memory), at: index)
        }
        return memory
    }

    /// `munmap`s memory once no DMA mapping pins it (`EBUSY` before: pinned pages stay); returns
    /// once no DMA transfer can still be reaching it.
    public func release(_ memory: HostMemory) throws(MemoryError) {
        try state.withLock { (state) throws(MemoryError) in
            guard let index = state.regions.firstIndex(where: { $0.memory === memory }) else {
                throw MemoryError(.invalidArgument, rule: .none, "release \(memory): not allocated by this process")
            }
            guard state.regions[index].pins == 0 else {
                throw MemoryError(
                    .resourceBusy, rule: .none,
                    "release \(memory): \(state.regions[index].pins) DMA mapping(s) still pin it; unmap them first")
            }
            state.regions.remove(at: index)
        }
        // A new grace period drops every device's cached grant; DMA still copying into the
        // memory (identity and bypass DMA too) is waited out.
        DMAQuiescence.synchronize()
    }

    /// The memory a device's DMA may touch around host address `address`: the allocation holding
    /// it, or (whole process) a pinned range of directly accessible memory.
    public func grant(containing address: UInt64) -> DMAGrant? {
        state.withLock { state in
            let index = state.firstRegion(endingAtOrAfter: address)
            if index < state.regions.count, state.regions[index].memory.address <= address {
                let memory = state.regions[index].memory
                return DMAGrant(start: memory.address, end: memory.address + memory.size, owner: memory)
            }
            guard let pin = state.pins.first(where: { $0.start <= address && address < $0.end }) else { return nil }
            if pin.device, !state.deviceMappings.contains(where: { $0.directlyAccessible && $0.start <= pin.start && pin.end <= $0.end }) {
                return nil  // a register BAR: peer-to-peer into registers is not modelled
            }
            return DMAGrant(start: pin.start, end: pin.end, owner: nil)
        }
    }

    /// `vfio_pin_pages_remote`: every byte of `[vaddr, vaddr + size)` must be process memory
    /// (writable when the device may write it), else `EFAULT`; the charge must fit the limit,
    /// else `ENOMEM` with the kernel's message. Nothing is pinned on failure. A BAR the process
    /// mapped (`VM_PFNMAP`) is accepted as type1's `follow_fault_pfn` does, unless
    /// `allowingDeviceMemory` is false: `pin_user_pages` refuses it (`EFAULT`, iommufd's path).
    package func pin(vaddr: UInt64, size: UInt64, access: IOAccess, allowingDeviceMemory: Bool = true) throws(MemoryError) {
        if addressSpace == .wholeProcess {
            let last = vaddr &+ (size - 1)
            // One look under the lock: an allocation's pin, a device mapping's, or the address space's.
            let (allocated, device, touchesDevice) = state.withLock { state in
                (
                    state.allocationsCover(vaddr, size), state.deviceMappings.contains { $0.start <= vaddr && last < $0.end },
                    state.deviceMappings.contains { $0.start <= last && vaddr < $0.end }
                )
            }
            if touchesDevice, !allowingDeviceMemory {
                throw MemoryError(.badAddress, rule: .IOMMUFD_401, "pin vaddr \(rangeText(vaddr, last)): a device BAR mapping (VM_PFNMAP), which pin_user_pages refuses")
            }
            if !allocated { return try pinMapping(vaddr: vaddr, size: size, access: access, device: device) }
        }
        try state.withLock { (state) throws(MemoryError) in
            let covering = try state.regions(covering: vaddr, size: size, access: access)
            // The kernel counts the limit in whole pages (`rlimit >> PAGE_SHIFT`) and prints it
            // back as `limit << PAGE_SHIFT`; sizes are whole pages, so comparing bytes agrees.
            if let limit = state.limit, state.lockedBytes > limit || size > limit - state.lockedBytes {
                throw MemoryError(
                    .noMemory, rule: .T1_20,
                    "vfio_pin_pages_remote: RLIMIT_MEMLOCK (\(limit & ~(hostPageSize - 1))) exceeded: pinning \(size) bytes at vaddr 0x\(String(vaddr, radix: 16)) on top of \(state.lockedBytes) locked")
            }
            for index in covering { state.regions[index].pins += 1 }
            state.lockedBytes += size
        }
    }

    /// `vfio_unpin_pages_remote`: undoes one `pin` of exactly this range.
    package func unpin(vaddr: UInt64, size: UInt64) {
        if addressSpace == .wholeProcess, unpinMapping(vaddr: vaddr, size: size) { return }
        state.withLock { state in
            // A pinned range is covered by construction, with any access.
            guard let covering = try? state.regions(covering: vaddr, size: size, access: []) else { return }
            for index in covering { state.regions[index].pins -= 1 }
            state.lockedBytes -= size
        }
    }
}

extension ProcessMemory {
    /// How many DMA pins hold each `PAGE_SIZE` page of `[vaddr, vaddr + size)` — the
    /// `page_ref_count / GUP_PIN_COUNTING_BIAS` the iommufd selftest's `MD_CHECK_REFS` reads
    /// (IOMMUFD-813) — after faulting each page in for reading as `get_user_pages_fast` does
    /// (`EFAULT` for one the process has not mapped readable). A page of an allocation counts the
    /// pins of the allocation (each pins it whole); a page of the whole process counts the pinned
    /// ranges covering it. `vaddr` and `size` are page aligned.
    public func pinCounts(vaddr: UInt64, size: UInt64, rule: RuleID = .none) throws(MemoryError) -> [Int] {
        guard size > 0 else { return [] }
        try touch(vaddr: vaddr, size: size, rule: rule)
        let pages = Array(stride(from: vaddr, to: vaddr + size, by: Int(hostPageSize)))
        let pins = state.withLock { state in state.pins.filter { !$0.device } }
        // A page of a shared file mapping also counts the pins of other mappings of its file page
        // (only a pin elsewhere can be one).
        let elsewhere = pins.contains { !($0.start <= vaddr && vaddr + size <= $0.end) }
        let mappings = addressSpace == .wholeProcess && elsewhere ? UserPageIdentity.mappings() : []
        let identities = pages.map { UserPageIdentity.of($0, in: mappings) }
        let aliases: [(identity: UserPageIdentity, pin: Pin)] = identities.contains { if case .file = $0 { true } else { false } }
            ? pins.map { (UserPageIdentity.of($0.start, in: mappings), $0) } : []
        return state.withLock { state in
            zip(pages, identities).map { page, identity -> Int in
                let index = state.firstRegion(endingAtOrAfter: page)
                if index < state.regions.count, state.regions[index].memory.address <= page { return state.regions[index].pins }
                var count = pins.filter { $0.start <= page && page < $0.end }.count
                if case .file(let device, let inode, let offset) = identity {
                    count += aliases.filter { alias in
                        guard case .file(device, inode, let first) = alias.identity, !(alias.pin.start <= page && page < alias.pin.end) else { return false }
                        return first <= offset && offset < first + (alias.pin.end - alias.pin.start)
                    }.count
                }
                return count
            }
        }
    }

    /// `get_user_pages_fast` without a pin, as the selftest's checks fault pages in: `EFAULT` for a
    /// page of `[vaddr, vaddr + size)` the process has not mapped readable (an allocation's pages
    /// always are), citing `rule`.
    public func touch(vaddr: UInt64, size: UInt64, rule: RuleID = .none) throws(MemoryError) {
        guard size > 0 else { return }
        let allocated = state.withLock { $0.allocationsCover(vaddr, size) }
        if !allocated, vfiokit_user_touch(UInt(vaddr), Int(size), 0) != 0 {
            throw MemoryError(.badAddress, rule: rule, "get_user_pages_fast \(rangeText(vaddr, vaddr &+ (size - 1))): not mapped readable")
        }
    }

    /// `vfio_pin_pages_remote` on the real address space: a range inside one device mapping is
    /// `VM_PFNMAP` (accepted, not charged); anything else is faulted in page by page as
    /// `pin_user_pages` does (`vfiokit_user_touch`), so an unmapped, `PROT_NONE` or — for device
    /// writes — read-only page is `EFAULT`; then the charge must fit `RLIMIT_MEMLOCK`.
    private func pinMapping(vaddr: UInt64, size: UInt64, access: IOAccess, device: Bool) throws(MemoryError) {
        let last = vaddr &+ (size - 1)
        if !device, vfiokit_user_touch(UInt(vaddr), Int(size), access.contains(.write) ? 1 : 0) != 0 {
            let why = access.contains(.write) ? "not mapped writable" : "not mapped readable"
            throw MemoryError(.badAddress, rule: .T1_20, "pin vaddr \(rangeText(vaddr, last)): \(why) (get_user_pages fails)")
        }
        try state.withLock { (state) throws(MemoryError) in
            if !device {
                if let limit = state.limit, state.lockedBytes > limit || size > limit - state.lockedBytes {
                    throw MemoryError(
                        .noMemory, rule: .T1_20,
                        "vfio_pin_pages_remote: RLIMIT_MEMLOCK (\(limit & ~(hostPageSize - 1))) exceeded: pinning \(size) bytes at vaddr 0x\(String(vaddr, radix: 16)) on top of \(state.lockedBytes) locked")
                }
                state.lockedBytes += size
            }
            state.pins.append(Pin(start: vaddr, end: vaddr + size, device: device))
        }
    }

    /// Undoes one `pinMapping` of exactly this range (false: it was an allocation's pin); pages the
    /// program unmapped meanwhile go once no pin holds them.
    private func unpinMapping(vaddr: UInt64, size: UInt64) -> Bool {
        let released: [(start: UInt64, end: UInt64)]? = state.withLock { state in
            guard let index = state.pins.firstIndex(where: { $0.start == vaddr && $0.end == vaddr + size }) else { return nil }
            let pin = state.pins.remove(at: index)
            if !pin.device { state.lockedBytes -= size }
            // Nothing the program unmapped is waiting on a pin (the common case): no pages to free.
            if state.retained.isEmpty { return [] }
            let free = state.retained.filter { range in !state.pins.contains { !$0.device && $0.start < range.end && range.start < $0.end } }
            state.retained.removeAll { range in free.contains { $0 == range } }
            return free
        }
        guard let released else { return false }
        for range in released { Glibc.munmap(UnsafeMutableRawPointer(bitPattern: UInt(range.start)), Int(range.end - range.start)) }
        return true
    }

    /// A device's DMA copy into or out of the program's own memory (a whole-process pin): nil when
    /// all `count` bytes were copied, else the address that faulted — the program mapped
    /// something else, or nothing accessible, over memory still DMA-mapped (`MAP_FIXED`). The
    /// program sees no signal for it (`vfiokit_dma_copy`).
    public static func deviceCopy(to: UnsafeMutableRawPointer, from: UnsafeRawPointer, count: Int) -> UInt64? {
        var address: UInt = 0
        return vfiokit_dma_copy(to, from, count, &address) == 0 ? nil : UInt64(address)
    }

    /// A device BAR the program mapped at `[start, start + length)`; `directlyAccessible` when
    /// it is device RAM rather than trapped registers.
    public func addDeviceMapping(start: UInt64, length: UInt64, directlyAccessible: Bool) {
        state.withLock { $0.deviceMappings.append((start, start + length, directlyAccessible)) }
    }

    /// A new mapping placed over `[start, start + length)` (`MAP_FIXED`): the device mappings
    /// there end (the parts outside stay); pinned pages are left to their pins.
    public func replacing(start: UInt64, length: UInt64) {
        let end = length > UInt64.max - start ? UInt64.max : start + length
        state.withLock { $0.removeDeviceMappings(start, end) }
    }

    /// `munmap(start, length)` as the kernel sees it with pinned pages: the device mappings in the
    /// range go; the returned pieces are what may really be unmapped now — pinned pages stay
    /// (retained until their last pin goes), as a pinned page outlives its mapping.
    public func unmapping(start: UInt64, length: UInt64) -> [(start: UInt64, end: UInt64)] {
        let end = length > UInt64.max - start ? UInt64.max : start + length
        return state.withLock { state in
            state.removeDeviceMappings(start, end)
            var pieces = [(start: start, end: end)]
            for pin in state.pins where !pin.device && pin.start < end && start < pin.end {
                pieces = pieces.flatMap { piece -> [(start: UInt64, end: UInt64)] in
                    guard pin.start < piece.end, piece.start < pin.end else { return [piece] }
                    let kept = (start: max(piece.start, pin.start), end: min(piece.end, pin.end))
                    if !state.retained.contains(where: { $0 == kept }) { state.retained.append(kept) }
                    return [(piece.start, kept.start), (kept.end, piece.end)].filter { $0.start < $0.end }
                }
            }
            return pieces
        }
    }
}

/// What a device's DMA may touch around an address: `[start, end)` of host memory, kept alive by
/// `owner` (an allocation) or by the pin that holds it.
public struct DMAGrant: Sendable {
    public let start: UInt64
    public let end: UInt64
    public let owner: HostMemory?
}

extension StringProtocol {
    fileprivate var trimmingSpaces: String { String(drop { $0 == " " || $0 == "\t" }.prefix { $0 != " " && $0 != "\n" }) }
}

extension ProcessMemory.State {
    /// Ends every device mapping byte inside `[start, end)`; a mapping cut in two keeps both outer parts.
    fileprivate mutating func removeDeviceMappings(_ start: UInt64, _ end: UInt64) {
        deviceMappings = deviceMappings.flatMap { mapping -> [(start: UInt64, end: UInt64, directlyAccessible: Bool)] in
            guard mapping.start < end, start < mapping.end else { return [mapping] }
            return [(mapping.start, start, mapping.directlyAccessible), (end, mapping.end, mapping.directlyAccessible)].filter { $0.start < $0.end }
        }
    }

    /// Whether allocations cover `[vaddr, vaddr + size)` without a gap (no error built: a whole-
    /// process pin asks this first on every MAP_DMA).
    fileprivate func allocationsCover(_ vaddr: UInt64, _ size: UInt64) -> Bool {
        let last = vaddr &+ (size - 1)
        var next = vaddr
        var index = firstRegion(endingAtOrAfter: vaddr)
        while index < regions.count, regions[index].memory.address <= next {
            if regions[index].memory.last >= last { return true }
            next = regions[index].memory.last + 1
            index += 1
        }
        return false
    }

    /// The first region whose last byte is at or after `address` (regions are sorted, disjoint).
    fileprivate func firstRegion(endingAtOrAfter address: UInt64) -> Int {
        var low = 0
        var high = regions.count
        while low < high {
            let middle = (low + high) / 2
            if regions[middle].memory.last < address { low = middle + 1 } else { high = middle }
        }
        return low
    }

    /// Indexes of the regions that together cover `[vaddr, vaddr + size)` without a gap.
    fileprivate func regions(covering vaddr: UInt64, size: UInt64, access: IOAccess) throws(MemoryError) -> [Int] {
        let last = vaddr + (size - 1)
        var covering: [Int] = []
        var next = vaddr
        var index = firstRegion(endingAtOrAfter: vaddr)
        while index < regions.count, regions[index].memory.address <= next {
            let memory = regions[index].memory
            if access.contains(.write), !memory.isWritable {
                throw MemoryError(
                    .badAddress, rule: .T1_20,
                    "pin vaddr \(rangeText(vaddr, last)) for device writes: \(memory) is read-only")
            }
            covering.append(index)
            if memory.last >= last { return covering }
            next = memory.last + 1
            index += 1
        }
        throw MemoryError(
            .badAddress, rule: .T1_20,
            "pin vaddr \(rangeText(vaddr, last)): 0x\(String(next, radix: 16)) is not memory this process allocated (get_user_pages fails)")
    }
}

/// `int getrlimit(int resource, struct rlimit *)`, declared with an enum the Glibc module renames.
@_silgen_name("getrlimit")
private func systemGetrlimit(_ resource: Int32, _ limit: UnsafeMutablePointer<rlimit>) -> Int32
