import KernelRules
import UserMemory
import IOMMU
import Locking
import Synchronization
import SystemPackage

/// An open `/dev/vfio/vfio` (`struct vfio_container`, `drivers/vfio/container.c`) with the type1
/// backend: groups join it (claiming their DMA ownership), `setIOMMU` selects type1 or type1v2,
/// and the DMA calls follow `vfio_iommu_type1.c` check for check and errno for errno (spec §3,
/// §4.6). Thread-safe; every failed call leaves the container as it was, except where the kernel
/// fails after unmapping: a UAPI UNMAP_DMA whose copy to the user (dirty bits, `size`) faults
/// (T1-84, T1-37).
public final class VFIOContainer: Sendable, CustomStringConvertible {
    private static let nextID = Atomic<Int>(1)

    public let id: Int
    public let options: VFIOContainerOptions
    /// The address space MAP_DMA pins from.
    public let process: ProcessMemory
    /// The ownership cookie groups are claimed with (OWN-04).
    let owner: DMAOwner
    let state: PThreadMutex<State>
    /// `VFIOExtension.rawValue` of the selected backend, 0 before `setIOMMU` and after the last
    /// group leaves: written under `state`'s lock with the backend, read without it by the
    /// ioctl dispatch (which takes the lock once, for the operation itself).
    private let selectedType = Atomic<UInt32>(0)

    struct State: Sendable {
        /// The groups in the container, in join order (`container->group_list`).
        var groups: [VFIOGroup] = []
        /// Set by `setIOMMU` (`container->iommu_driver`).
        var iommu: Type1IOMMU?
    }

    public init(process: ProcessMemory, options: VFIOContainerOptions = VFIOContainerOptions()) {
        id = Self.nextID.wrappingAdd(1, ordering: .relaxed).oldValue
        self.options = options
        self.process = process
        owner = DMAOwner("VFIO container \(id)")
        state = PThreadMutex(State())
    }

    public var description: String { "VFIO container \(id)" }

    /// `VFIO_GET_API_VERSION` (VG-20).
    public var apiVersion: Int32 { vfioAPIVersion }

    /// `VFIO_CHECK_EXTENSION` (VG-21, T1-03): before `setIOMMU`, what type1 answers without an
    /// IOMMU; after, the selected backend's answer.
    public func checkExtension(_ extensionID: VFIOExtension) -> Int32 {
        state.withLock { Type1IOMMU.checkExtension(extensionID, of: $0.iommu) }
    }

    /// `VFIO_CHECK_EXTENSION` with the ioctl's whole `unsigned long` argument: an ID beyond 32
    /// bits is no extension (0), as the kernel's `switch` on the unconverted value finds none.
    package func checkExtension(argument: UInt) -> Int32 {
        UInt32(exactly: argument).map { checkExtension(VFIOExtension(rawValue: $0)) } ?? 0
    }

    /// The IOMMU type set by `setIOMMU`, nil before.
    public var iommuType: VFIOExtension? {
        let raw = selectedType.load(ordering: .acquiring)
        return raw == 0 ? nil : VFIOExtension(rawValue: raw)
    }

    /// The groups in the container, in join order.
    public var groups: [VFIOGroup] { state.withLock { $0.groups } }

    /// `VFIO_SET_IOMMU` (VG-22): needs a group and no backend yet; type1 opens (T1-02) and attaches
    /// every group in order (T1-50), detaching them in reverse if one fails.
    public func setIOMMU(_ type: VFIOExtension) throws(VFIOError) {
        try setIOMMU(argument: UInt(type.rawValue))
    }

    /// `VFIO_SET_IOMMU` with the ioctl's whole `unsigned long` argument: the kernel compares it
    /// unconverted, so an ID beyond 32 bits names no driver (`ENODEV`), never its low half.
    package func setIOMMU(argument: UInt) throws(VFIOError) {
        let type = UInt32(exactly: argument).map(VFIOExtension.init(rawValue:))
        let name = type?.description ?? "type 0x\(String(argument, radix: 16))"
        try state.withLock { (state) throws(VFIOError) in
            guard !state.groups.isEmpty, state.iommu == nil else {
                throw VFIOError(
                    .invalidArgument, rule: .VG_22,
                    state.iommu == nil ? "\(self) SET_IOMMU \(name): the container has no group yet" : "\(self) SET_IOMMU \(name): an IOMMU is already set")
            }
            guard let type, [.type1, .type1v2, .unmapAll].contains(type) else {
                throw VFIOError(.operationNotSupportedByDevice, rule: .VG_22, "\(self) SET_IOMMU \(name): no IOMMU driver supports it (type1 answers 0 for it)")
            }
            // type1's CHECK_EXTENSION answers 1 for UNMAP_ALL, so the loop reaches its open, which
            // refuses anything but TYPE1 and TYPE1v2: `ret` becomes -EINVAL (vfio_iommu_type1_open).
            guard type != .unmapAll else {
                throw VFIOError(.invalidArgument, rule: .VG_22, "\(self) SET_IOMMU \(name): type1 supports the extension but opens only TYPE1 and TYPE1v2")
            }
            var iommu = try Type1IOMMU(type: type, name: description, options: options, process: process)
            var attached: [ObjectIdentifier] = []
            // __vfio_container_attach_groups walks group_list, where each group that joined was
            // list_add'ed at the head: the newest group attaches first, and its failure is the one
            // SET_IOMMU reports.
            for group in state.groups.reversed() {
                do throws(VFIOError) {
                    try iommu.attach(group.type1Group)
                    attached.append(ObjectIdentifier(group))
                } catch {
                    for key in attached.reversed() { try? iommu.detach(key) }
                    throw error
                }
            }
            state.iommu = iommu
            selectedType.store(iommu.v2 ? VFIOExtension.type1v2.rawValue : VFIOExtension.type1.rawValue, ordering: .releasing)
        }
    }

    /// Runs a type1 operation; `EINVAL` before `setIOMMU` (VG-23, VG-24).
    func withIOMMU<Result>(_ operation: String, _ body: (inout Type1IOMMU) throws(VFIOError) -> Result) throws(VFIOError) -> Result {
        try state.withLock { (state) throws(VFIOError) -> Result in
            guard state.iommu != nil else {
                throw VFIOError(.invalidArgument, rule: .VG_24, "\(self) \(operation): no IOMMU is set (VFIO_SET_IOMMU first)")
            }
            return try body(&state.iommu!)
        }
    }

    /// `VFIO_IOMMU_MAP_DMA` (T1-11..23, and T1-60 with `.vaddr`).
    public func map(_ request: DMAMapRequest) throws(VFIOError) {
        try withIOMMU("MAP_DMA") { (iommu) throws(VFIOError) in try iommu.map(request) }
    }

    /// Maps `size` bytes of process memory at `vaddr` to `iova` for the device to access.
    public func map(vaddr: UInt64, iova: UInt64, size: UInt64, access: IOAccess = .readWrite) throws(VFIOError) {
        try map(DMAMapRequest(flags: DMAMapFlags(access: access), vaddr: vaddr, iova: iova, size: size))
    }

    /// `VFIO_IOMMU_UNMAP_DMA` (T1-30..38): the bytes unmapped (or invalidated, with `.vaddr`).
    public func unmap(_ request: DMAUnmapRequest) throws(VFIOError) -> DMAUnmapResult {
        try unmap(request) { _ in }
    }

    /// UNMAP_DMA for the UAPI facade: `copyDirtyWords` copies each mapping's dirty words to the
    /// user just before the mapping goes (`update_user_bitmap`). The one failure that leaves the
    /// container changed: when that copy faults, the mappings removed before it stay removed
    /// (T1-37, T1-84).
    package func unmap(_ request: DMAUnmapRequest, copyDirtyWords: DirtyWordsCopy) throws(VFIOError) -> DMAUnmapResult {
        try withIOMMU("UNMAP_DMA") { (iommu) throws(VFIOError) in try iommu.unmap(request, copyDirtyWords: copyDirtyWords) }
    }

    /// Unmaps whole mappings in `[iova, iova + size)`; returns the bytes unmapped.
    @discardableResult
    public func unmap(iova: UInt64, size: UInt64) throws(VFIOError) -> UInt64 {
        try unmap(DMAUnmapRequest(iova: iova, size: size)).size
    }

    /// `VFIO_DMA_UNMAP_FLAG_ALL` (T1-38).
    @discardableResult
    public func unmapAll() throws(VFIOError) -> UInt64 {
        try unmap(DMAUnmapRequest(flags: .all, iova: 0, size: 0)).size
    }

    /// `VFIO_IOMMU_GET_INFO` (T1-70, T1-71).
    public func info() throws(VFIOError) -> Type1Info {
        try withIOMMU("GET_INFO") { iommu in
            Type1Info(pageSizes: iommu.pageSizes, iovaRanges: iommu.iovaList.ranges, dmaAvailable: iommu.dmaAvailable)
        }
    }

    /// `VFIO_IOMMU_DIRTY_PAGES` (T1-80..83): START / STOP return an empty bitmap.
    public func dirtyPages(_ flags: DirtyPagesFlags, query: DirtyBitmapQuery? = nil) throws(VFIOError) -> [UInt64] {
        try dirtyPages(flags, query: query) { _ in }
    }

    /// DIRTY_PAGES for the UAPI facade: GET_BITMAP hands each mapping's words to
    /// `copyDirtyWords` (`update_user_bitmap`), so words outside the mappings stay the user's.
    package func dirtyPages(_ flags: DirtyPagesFlags, query: DirtyBitmapQuery?, copyDirtyWords: DirtyWordsCopy) throws(VFIOError) -> [UInt64] {
        try withIOMMU("DIRTY_PAGES") { (iommu) throws(VFIOError) in try iommu.dirtyPages(flags, query: query, copyDirtyWords: copyDirtyWords) }
    }

    /// The container's mappings, lowest IOVA first.
    public var mappings: [DMAMapping] { state.withLock { $0.iommu?.table.mappings ?? [] } }

    /// The IOMMU domains type1 created, one per distinct IOMMU among the groups (T1-50 step 11).
    public var domains: [IOMMUDomain] { state.withLock { $0.iommu?.domains.map(\.domain) ?? [] } }

    /// VG-11: a group joins; with a backend set it is attached now (T1-50).
    func add(_ group: VFIOGroup) throws(VFIOError) {
        try state.withLock { (state) throws(VFIOError) in
            if state.iommu != nil { try state.iommu!.attach(group.type1Group) }
            state.groups.append(group)
        }
    }

    /// VG-13: a group leaves (T1-56); the last one takes the backend with it.
    func remove(_ group: VFIOGroup) {
        state.withLock { state in
            if state.iommu != nil {
                // The group is attached whenever a backend is set, so detach cannot fail.
                try? state.iommu!.detach(ObjectIdentifier(group))
            }
            state.groups.removeAll { $0 === group }
            if state.groups.isEmpty {
                state.iommu = nil
                selectedType.store(0, ordering: .releasing)
            }
        }
    }
}
