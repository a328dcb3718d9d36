import KernelRules
import IOMMU
import Locking
import SystemPackage

/// The user address space a container pins from (`current->mm` of the task calling MAP_DMA): the
/// host memory the process allocated, which pages are pinned for DMA, and the locked-memory
/// accounting (`mm->locked_vm`) against `RLIMIT_MEMLOCK` (T1-20, T1-91). Devices can only ever
/// reach memory that was pinned here, so nothing outside what a driver granted is touched.
public final class ProcessMemory: Sendable {
    fileprivate struct Region {
        let memory: HostMemory
        var pins = 0
    }

    fileprivate struct State {
        /// Sorted by address, disjoint.
        var regions: [Region] = []
        var lockedBytes: UInt64 = 0
        var limit: UInt64?
    }

    private let state: PThreadMutex<State>

    /// `lockedMemoryLimit` is `RLIMIT_MEMLOCK` in bytes; nil is `RLIM_INFINITY` (the default, as
    /// for a task with `CAP_IPC_LOCK`).
    public init(lockedMemoryLimit: UInt64? = nil) {
        state = PThreadMutex(State(limit: lockedMemoryLimit))
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

    /// The allocation holding host address `address`, if any: what a device's DMA may touch.
    public func memory(containing address: UInt64) -> HostMemory? {
        state.withLock { state in
            let index = state.firstRegion(endingAtOrAfter: address)
            guard index < state.regions.count, state.regions[index].memory.address <= address else { return nil }
            return state.regions[index].memory
        }
    }

    /// `vfio_pin_pages_remote`: every byte of `[vaddr, vaddr + size)` must be process memory
    /// (writable when the device may write it), else `EFAULT`; the charge must fit the limit,
    /// else `ENOMEM` with the kernel's message. Nothing is pinned on failure.
    package func pin(vaddr: UInt64, size: UInt64, access: IOAccess) throws(MemoryError) {
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
        state.withLock { state in
            // A pinned range is covered by construction, with any access.
            guard let covering = try? state.regions(covering: vaddr, size: size, access: []) else { return }
            for index in covering { state.regions[index].pins -= 1 }
            state.lockedBytes -= size
        }
    }
}

extension ProcessMemory.State {
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
