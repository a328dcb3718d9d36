import SystemPackage
import IOMMU
import KernelRules
import Locking
import Synchronization
import UserMemory

/// An open `/dev/iommu` (`struct iommufd_ctx`, `drivers/iommu/iommufd/main.c`): one object table
/// (IOAS, HWPT_PAGING, DEVICE) with its ID space (IOMMUFD-110..116), the compat IOAS VFIO's
/// container ioctls use (§7) and the account mode. Every command takes the context's lock, checks
/// in the kernel's order and changes nothing when it fails, except where the kernel keeps partial
/// progress (IOMMUFD-233, -713). VFIO devices bound to it keep it alive after its fd is closed
/// (IOMMUFD-115).
public final class IOMMUFDContext: Sendable, CustomStringConvertible {
    private static let nextNumber = Atomic<Int>(1)

    /// The process whose memory IOAS_MAP pins.
    public let process: ProcessMemory
    /// The DMA ownership cookie devices are claimed with (OWN-06): this context.
    public let owner: DMAOwner
    /// `iommufd.allow_unsafe_interrupts` (IOMMUFD-600 step 3).
    public let allowUnsafeInterrupts: Bool
    /// `CONFIG_IOMMUFD_TEST`: the kernel has the selftest mock (§8) — `IOMMU_TEST_CMD`, mock
    /// devices, access objects. Off, the test command does not exist (IOMMUFD-800).
    public let selftest: Bool
    let number: Int
    let state: PThreadMutex<State>

    struct State: Sendable {
        var objects: [UInt32: IOMMUFDObject] = [:]
        var accountMode: IOMMUFDAccountMode
        /// `ictx->vfio_ioas` (IOMMUFD-701): a weak reference by ID.
        var compatIOAS: UInt32?
        /// The fd is closed; bound devices keep the objects until they unbind.
        var fileClosed = false
        /// `iommufd_test_memory_limit` (`IOMMU_TEST_OP_SET_TEMP_MEMORY_LIMIT`, IOMMUFD-817).
        var temporaryMemoryLimit: UInt32 = 65536
        /// What holds a reference on the context besides its fd (`iommufd_ctx_get`): VFIO's bound
        /// devices (a mock device takes none) and the selftest's access objects.
        var holders: Int {
            objects.values.filter { object in
                switch object {
                case .device(let device): device.backend.address != nil
                case .access: true
                default: false
                }
            }.count
        }

        /// `xa_alloc` with `XA_FLAGS_ALLOC1` (IOMMUFD-111): the lowest free ID from 1.
        func freeID() -> UInt32 {
            var id: UInt32 = 1
            while objects[id] != nil { id += 1 }
            return id
        }

        /// `iommufd_get_object(..., IOAS)` (IOMMUFD-112).
        func ioas(_ id: UInt32, rule: RuleID, _ what: String) throws(IOMMUFDError) -> IOAddressSpace {
            guard case .ioas(let ioas) = objects[id] else { throw Self.missing(id, "IOAS", objects[id], rule: rule, what) }
            return ioas
        }

        func device(_ id: UInt32, rule: RuleID, _ what: String) throws(IOMMUFDError) -> BoundDevice {
            guard case .device(let device) = objects[id] else { throw Self.missing(id, "device", objects[id], rule: rule, what) }
            return device
        }

        /// `iommufd_get_hwpt_paging`.
        func hwptPaging(_ id: UInt32, rule: RuleID, _ what: String) throws(IOMMUFDError) -> HWPTPaging {
            guard case .hwptPaging(let hwpt) = objects[id] else { throw Self.missing(id, "HWPT_PAGING", objects[id], rule: rule, what) }
            return hwpt
        }

        static func missing(_ id: UInt32, _ kind: String, _ found: IOMMUFDObject?, rule: RuleID, _ what: String) -> IOMMUFDError {
            let article = kind.first.map { "AEIOUH".contains($0) } == true ? "an" : "a"
            return IOMMUFDError(
                .noSuchFileOrDirectory, rule: rule, "\(what): object \(id) is \(found.map { "a \($0.typeName), not \(article) \(kind)" } ?? "not in the context")")
        }
    }

    /// `open("/dev/iommu")` (IOMMUFD-100); `openedAsVFIOContainer` for iommufd serving
    /// `/dev/vfio/vfio`, whose contexts start in MM account mode.
    /// `selftest` is `CONFIG_IOMMUFD_TEST` (§8): the kernel was built with the selftest mock.
    public init(process: ProcessMemory, openedAsVFIOContainer: Bool = false, allowUnsafeInterrupts: Bool = false, selftest: Bool = false) {
        number = Self.nextNumber.wrappingAdd(1, ordering: .relaxed).oldValue
        self.process = process
        self.allowUnsafeInterrupts = allowUnsafeInterrupts
        self.selftest = selftest
        owner = DMAOwner("iommufd context \(number)")
        state = PThreadMutex(State(accountMode: openedAsVFIOContainer ? .mm : .user))
    }

    public var description: String { "iommufd context \(number)" }

    /// The IDs in use, lowest first.
    public var objectIDs: [UInt32] { state.withLock { $0.objects.keys.sorted() } }

    /// `IOMMU_DESTROY` (IOMMUFD-113, -114): `ENOENT` for no object, `EBUSY` while something holds
    /// it — an IOAS its HWPTs and accesses, an HWPT its devices, a device always (only unbind
    /// removes it), an access always (its creator holds it). A SELFTEST object takes its mock
    /// device with it (IOMMUFD-811).
    public func destroy(_ id: UInt32) throws(IOMMUFDError) {
        try state.withLock { (state) throws(IOMMUFDError) in
            guard let object = state.objects[id] else {
                throw IOMMUFDError(.noSuchFileOrDirectory, rule: .IOMMUFD_113, "DESTROY: no object \(id)")
            }
            switch object {
            case .reserved:
                throw IOMMUFDError(.noSuchFileOrDirectory, rule: .IOMMUFD_113, "DESTROY: object \(id) is not finalized")
            case .device:
                throw IOMMUFDError(.resourceBusy, rule: .IOMMUFD_114, "DESTROY \(id): a bound device; it goes when its VFIO device fd is closed")
            case .access:
                throw IOMMUFDError(.resourceBusy, rule: .IOMMUFD_114, "DESTROY \(id): an access object; its creator holds it until it closes the access")
            case .selftest(let selftest):
                Self.removeSelftest(id, selftest, &state)
            case .hwptPaging(let hwpt):
                guard hwpt.devices.isEmpty else {
                    throw IOMMUFDError(.resourceBusy, rule: .IOMMUFD_506, "DESTROY HWPT \(id): devices \(hwpt.devices) are attached to it")
                }
                if let user = state.pasidUsers(of: id).first {
                    throw IOMMUFDError(.resourceBusy, rule: .IOMMUFD_506, "DESTROY HWPT \(id): device \(user.device) has it attached at PASID \(user.pasid)")
                }
                Self.removeHWPT(id, hwpt, &state)
            case .ioas(let ioas):
                if let user = state.objects.first(where: { if case .hwptPaging(let hwpt) = $0.value { hwpt.ioas == id } else { false } }) {
                    throw IOMMUFDError(.resourceBusy, rule: .IOMMUFD_114, "DESTROY IOAS \(id): HWPT \(user.key) is built on it")
                }
                if let access = ioas.accesses.first {
                    throw IOMMUFDError(.resourceBusy, rule: .IOMMUFD_114, "DESTROY IOAS \(id): access \(access.id) is attached to it")
                }
                _ = ioas.unmapAll()
                state.objects[id] = nil
                if state.compatIOAS == id { state.compatIOAS = nil }
            }
        }
    }

    /// An HWPT_PAGING leaves its IOAS (IOMMUFD-305) and the table.
    static func removeHWPT(_ id: UInt32, _ hwpt: HWPTPaging, _ state: inout State) {
        if case .ioas(let ioas) = state.objects[hwpt.ioas] { ioas.removeDomain(hwpt: id) }
        state.objects[id] = nil
    }

    /// `close(fd)` (`iommufd_fops_release`, IOMMUFD-115): every object destroyed, leaves first —
    /// once nothing else holds the context; until then VFIO's bound devices and the selftest's
    /// accesses keep it.
    public func close() {
        state.withLock { state in
            state.fileClosed = true
            if state.holders == 0 { Self.release(&state) }
        }
    }

    /// Destroys every object: mock devices (detached, unbound), HWPTs (their domains leave the
    /// IOASes), then the IOASes (areas unmapped, pins dropped).
    static func release(_ state: inout State) {
        for (id, object) in state.objects {
            if case .selftest(let selftest) = object { removeSelftest(id, selftest, &state) }
        }
        for (id, object) in state.objects {
            if case .hwptPaging(let hwpt) = object { removeHWPT(id, hwpt, &state) }
        }
        for (id, object) in state.objects {
            if case .ioas(let ioas) = object { _ = ioas.unmapAll() }
            state.objects[id] = nil
        }
        state.compatIOAS = nil
    }
}
