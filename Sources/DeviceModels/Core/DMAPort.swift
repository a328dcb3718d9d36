import UserMemory
import IOMMU
import PCIBus

/// A function's bus-master port: every DMA a device model issues goes through here, and nothing
/// else reaches memory. A transfer needs Bus Master Enable; it is then routed as the bus would:
/// to a peer's BAR when a switch port on the way up does not redirect it (`PeerToPeerRoute`),
/// else up to the IOMMU, which resolves the requester ID (after aliasing) to its group's current
/// domain — blocked: fault; identity: pass through; paging: page-by-page translation with
/// permission checks through the path's IOTLB. The result must be memory the process allocated
/// (`ProcessMemory`); anything else is dropped and reported. Faults land in the IOMMU's
/// `FaultLog` and come back to the model as a `DMAFault` with the bytes completed before it.
/// Each transfer is one read-side section of its thread (`DMAQuiescence`): once an unmap or a
/// detach returns, no transfer that began before it is still writing.
///
/// A value owned by the thread that runs the device's engine; copy it to give another its own.
public struct DMAPort: Sendable {
    /// A peer BAR this port reaches without translation.
    package struct PeerWindow: Sendable {
        let start: UInt64
        let end: UInt64
        let peer: PCIAddress
        /// The BAR's memory (nil: a register BAR, which takes no DMA).
        // Device RAM stays put while `owner` lives; DMA into it is what peer-to-peer is.
        nonisolated(unsafe) let memory: UnsafeMutableRawBufferPointer?
        // Keeps the memory alive.
        let owner: VirtualPCIDevice

        package init(start: UInt64, end: UInt64, peer: PCIAddress, memory: UnsafeMutableRawBufferPointer?, owner: VirtualPCIDevice) {
            self.start = start
            self.end = end
            self.peer = peer
            self.memory = memory
            self.owner = owner
        }
    }

    public let requester: PCIAddress
    // Nil until the device is attached to a machine.
    private var path: DMAPath?
    private let command: CommandRegisterMirror
    private let process: ProcessMemory?
    // The hot path borrows both through these, without a retain/release per run; the strong
    // references above keep them alive.
    private let unretainedCommand: Unmanaged<CommandRegisterMirror>
    private let unretainedProcess: Unmanaged<ProcessMemory>?
    private let peers: [PeerWindow]
    /// The allocation a recent run landed in, for transfers in the grace period it was looked up
    /// in (a release of process memory begins a new one before it returns).
    private struct Grant {
        var owner: HostMemory?
        var start: UInt64 = 1
        var end: UInt64 = 0
        var gracePeriod: UInt64 = 0
    }
    // One per direction, so a copy between two allocations hits both.
    private var readGrant = Grant()
    private var writeGrant = Grant()
    /// A run a transfer resolved: `[iova, end)` reaches `host…`, for transfers in the grace
    /// period it was resolved in.
    private struct ResolvedRun {
        var iova: UInt64 = 1
        var end: UInt64 = 0
        // Host memory stays put for the grace period: releasing it begins a new one.
        nonisolated(unsafe) var host = UnsafeMutableRawPointer(bitPattern: 1)!
        var gracePeriod: UInt64 = 0
        /// The program's own memory (a whole-process pin): copied with a guard, because the
        /// program may have mapped something else over it (`ProcessMemory.deviceCopy`); on
        /// Linux the pinned pages would live on unseen, here the transfer fails there.
        var guarded = false
    }
    // One per direction, so a copy engine's source and destination both hit.
    private var readRun = ResolvedRun()
    private var writeRun = ResolvedRun()

    init(requester: PCIAddress, path: DMAPath?, command: CommandRegisterMirror, process: ProcessMemory?, peers: [PeerWindow]) {
        self.requester = requester
        self.path = path
        self.command = command
        self.process = process
        unretainedCommand = Unmanaged.passUnretained(command)
        unretainedProcess = process.map(Unmanaged.passUnretained)
        self.peers = peers
    }

    /// The requester ID the IOMMU sees (after aliasing).
    public var requesterID: UInt16 { path?.requesterID ?? requester.requesterID }

    /// The peers this port reaches untranslated, by BAR address range.
    public var peerToPeerWindows: [(peer: PCIAddress, range: ClosedRange<UInt64>)] {
        peers.map { ($0.peer, $0.start...($0.end - 1)) }
    }

    /// A DMA read: `buffer.count` bytes from `iova` into the device.
    public mutating func read(from iova: UInt64, into buffer: UnsafeMutableRawBufferPointer) throws(DMAFault) {
        let total = UInt64(buffer.count)
        try checkBusMaster(iova, .read)
        DMAQuiescence.beginTransfer()
        defer { DMAQuiescence.endTransfer() }
        let gracePeriod = DMAQuiescence.gracePeriod
        var done: UInt64 = 0
        while done < total {
            let (source, length, guarded) = try resolve(iova &+ done, total - done, .read, completed: done, gracePeriod)
            let target = buffer.baseAddress!.advanced(by: Int(done))
            if let address = Self.transfer(target, source, length, guarded: guarded) {
                throw fault(iova &+ done, .read, .unmappedMemory(hostAddress: address), done)
            }
            done += length
        }
    }

    /// A DMA write: the device's `buffer` to `iova`.
    public mutating func write(to iova: UInt64, from buffer: UnsafeRawBufferPointer) throws(DMAFault) {
        let total = UInt64(buffer.count)
        try checkBusMaster(iova, .write)
        DMAQuiescence.beginTransfer()
        defer { DMAQuiescence.endTransfer() }
        let gracePeriod = DMAQuiescence.gracePeriod
        var done: UInt64 = 0
        while done < total {
            let (target, length, guarded) = try resolve(iova &+ done, total - done, .write, completed: done, gracePeriod)
            let source = buffer.baseAddress!.advanced(by: Int(done))
            if let address = Self.transfer(target, source, length, guarded: guarded) {
                throw fault(iova &+ done, .write, .unmappedMemory(hostAddress: address), done)
            }
            done += length
        }
    }

    /// A memory-to-memory transfer as a copy engine streams it: reads at `source`, writes at
    /// `destination`, `count` bytes, without staging through the device. Runs that are
    /// contiguous in host memory on both sides are merged into one copy.
    public mutating func copy(from source: UInt64, to destination: UInt64, count: UInt64) throws(DMAFault) {
        try checkBusMaster(source, .read)
        DMAQuiescence.beginTransfer()
        defer { DMAQuiescence.endTransfer() }
        let gracePeriod = DMAQuiescence.gracePeriod
        var done: UInt64 = 0
        while done < count {
            let (from, readable, readGuarded) = try resolve(source &+ done, count - done, .read, completed: done, gracePeriod)
            let (to, writable, writeGuarded) = try resolve(destination &+ done, readable, .write, completed: done, gracePeriod)
            if let address = Self.transfer(to, from, writable, guarded: readGuarded || writeGuarded) {
                // The side whose page faulted.
                let reading = readGuarded && address >= UInt64(UInt(bitPattern: from)) && address - UInt64(UInt(bitPattern: from)) < writable
                throw fault(reading ? source &+ done : destination &+ done, reading ? .read : .write, .unmappedMemory(hostAddress: address), done)
            }
            done += writable
        }
    }

    /// A little-endian load of one naturally sized value (a descriptor field, a doorbell record).
    public mutating func load<T: FixedWidthInteger>(_: T.Type, from iova: UInt64) throws(DMAFault) -> T {
        var value = T.zero
        try withUnsafeMutableBytes(of: &value) { (bytes) throws(DMAFault) in try read(from: iova, into: bytes) }
        return T(littleEndian: value)
    }

    /// A little-endian store of one value (a completion record, a status word).
    public mutating func store<T: FixedWidthInteger>(_ value: T, to iova: UInt64) throws(DMAFault) {
        var little = value.littleEndian
        try withUnsafeBytes(of: &little) { (bytes) throws(DMAFault) in try write(to: iova, from: bytes) }
    }

    /// Where the next run of a transfer lands: host memory and how many bytes of it (at most
    /// `remaining`), or a fault. The run the last transfer in this direction resolved is reused
    /// when it holds all of `remaining` and no grace period has begun since (nothing was
    /// unmapped, detached or released): the IOTLB hit a streaming engine lives on, without
    /// touching the path or the process.
    @inline(__always)
    private mutating func resolve(_ iova: UInt64, _ remaining: UInt64, _ access: IOAccess, completed: UInt64, _ gracePeriod: UInt64)
        throws(DMAFault) -> (UnsafeMutableRawPointer, UInt64, guarded: Bool)
    {
        let run = access == .write ? writeRun : readRun
        if gracePeriod == run.gracePeriod, iova >= run.iova, iova < run.end, remaining <= run.end &- iova {
            return (run.host + Int(iova &- run.iova), remaining, run.guarded)
        }
        return try resolveRun(iova, remaining, access, completed: completed, gracePeriod)
    }

    /// `resolve` past the cached run: a peer's BAR, else the IOMMU through the path and then the
    /// process's allocations; a success becomes the direction's cached run.
    @inline(never)
    private mutating func resolveRun(_ iova: UInt64, _ remaining: UInt64, _ access: IOAccess, completed: UInt64, _ gracePeriod: UInt64)
        throws(DMAFault) -> (UnsafeMutableRawPointer, UInt64, guarded: Bool)
    {
        let host: UnsafeMutableRawPointer
        let length: UInt64
        var guarded = false
        if !peers.isEmpty, let window = peers.first(where: { iova >= $0.start && iova < $0.end }) {
            guard let memory = window.memory else { throw fault(iova, access, .peerRegisters(window.peer), completed) }
            host = memory.baseAddress! + Int(iova - window.start)
            length = window.end - iova
        } else {
            guard path != nil else { throw fault(iova, access, .notAttached, completed) }
            switch path!.translate(iova, access: access, limit: remaining) {
            case .fault(let reason):
                throw fault(iova, access, .iommu(reason), completed)
            case .mapped(let address, let contiguous):
                let granted =
                    access == .write
                    ? grantedLength(address, contiguous, &writeGrant, gracePeriod) : grantedLength(address, contiguous, &readGrant, gracePeriod)
                guard granted > 0 else { throw fault(iova, access, .unbackedMemory(hostAddress: address), completed) }
                host = UnsafeMutableRawPointer(bitPattern: UInt(address))!
                length = granted
                // No allocation owns it: the program's own memory, pinned where it lies.
                guarded = (access == .write ? writeGrant : readGrant).owner == nil
            }
        }
        let run = ResolvedRun(iova: iova, end: length > UInt64.max - iova ? .max : iova + length, host: host, gracePeriod: gracePeriod, guarded: guarded)
        if access == .write { writeRun = run } else { readRun = run }
        return (host, min(remaining, length), guarded)
    }

    /// One run's bytes: nil when they were copied, else the host address that faulted — only a
    /// guarded copy (the program's own memory, `ProcessMemory.deviceCopy`) can fault.
    @inline(__always)
    private static func transfer(_ to: UnsafeMutableRawPointer, _ from: UnsafeRawPointer, _ count: UInt64, guarded: Bool) -> UInt64? {
        guard guarded else {
            to.copyMemory(from: from, byteCount: Int(count))
            return nil
        }
        return ProcessMemory.deviceCopy(to: to, from: from, count: Int(count))
    }

    /// Bus Master Enable, checked once per transfer.
    @inline(__always)
    private mutating func checkBusMaster(_ iova: UInt64, _ access: IOAccess) throws(DMAFault) {
        guard unretainedCommand._withUnsafeGuaranteedRef(\.busMasterEnabled) else { throw fault(iova, access, .busMasterDisabled, 0) }
    }

    /// How much of `[host, host + length)` lies in the allocation of the process holding `host`
    /// (0: none does). A run over two adjacent allocations is taken one allocation at a time.
    @inline(__always)
    private func grantedLength(_ host: UInt64, _ length: UInt64, _ grant: inout Grant, _ gracePeriod: UInt64) -> UInt64 {
        guard let unretainedProcess else { return 0 }
        if host >= grant.start, host < grant.end, gracePeriod == grant.gracePeriod { return min(length, grant.end - host) }
        guard host != 0, let granted = unretainedProcess._withUnsafeGuaranteedRef({ $0.grant(containing: host) }) else { return 0 }
        grant = Grant(owner: granted.owner, start: granted.start, end: granted.end, gracePeriod: gracePeriod)
        return min(length, grant.end - host)
    }

    private func fault(_ iova: UInt64, _ access: IOAccess, _ reason: DMAFault.Reason, _ completed: UInt64) -> DMAFault {
        return DMAFault(requester: requester, iova: iova, access: access, reason: reason, bytesCompleted: completed)
    }
}
