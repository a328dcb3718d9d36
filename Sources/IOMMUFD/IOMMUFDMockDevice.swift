import IOMMU
import KernelRules
import Locking
import Synchronization
import SystemPackage

/// `struct mock_dev` (`drivers/iommu/iommufd/selftest.c`): a device on the selftest's mock bus,
/// behind the mock IOMMU (`mock_ops`), created by `IOMMU_TEST_OP_MOCK_DOMAIN(_FLAGS)` and gone
/// with its SELFTEST object (IOMMUFD-811). It is no PCI function of the machine: it has its own
/// IOMMU group (`generic_device_group`), no reserved regions, no DMA of its own, and is exempt
/// from the isolated-MSI check (IOMMUFD-600 step 3). What it records is what the mock driver's
/// callbacks keep: the domain it is attached to and its cache entries (`DEV_CHECK_CACHE`).
public final class IOMMUFDMockDevice: Sendable, CustomStringConvertible {
    /// `mock_dev_ida`: the lowest free number, as `ida_alloc` hands them out.
    private static let numbers = PThreadMutex(Set<Int>())

    /// `MOCK_FLAGS_DEVICE_*` (IOMMUFD-802).
    public struct Flags: OptionSet, Sendable, Hashable {
        public let rawValue: UInt32
        public init(rawValue: UInt32) { self.rawValue = rawValue }
        /// `MOCK_FLAGS_DEVICE_NO_DIRTY`: the device's IOMMU cannot track dirty pages.
        public static let noDirty = Flags(rawValue: 1 << 0)
        /// `MOCK_FLAGS_DEVICE_PASID`: `pasid-num-bits` = `MOCK_PASID_WIDTH`.
        public static let pasid = Flags(rawValue: 1 << 2)
        public static let valid: Flags = [.noDirty, .pasid]
    }

    /// `MOCK_PASID_WIDTH`.
    public static let pasidWidth: UInt8 = 20
    /// `MOCK_DEV_CACHE_NUM` entries, each `IOMMU_TEST_DEV_CACHE_DEFAULT` at creation.
    public static let cacheEntries = 4
    public static let cacheDefault: UInt32 = 0xbaddad

    public let flags: Flags
    /// `mdev->id`: the N of `iommufd_mockN`.
    public let number: Int
    /// `mdev->cache[]`: nothing in the simulation invalidates it (that takes a vIOMMU).
    public let cache = [UInt32](repeating: cacheDefault, count: cacheEntries)
    /// `mdev->domain`: the domain the mock driver's `attach_dev` last took, nil for blocking.
    private let attached = PThreadMutex<IOMMUDomain?>(nil)

    /// `mock_dev_create` (IOMMUFD-804): `EINVAL` for flags outside `MOCK_FLAGS_DEVICE_NO_DIRTY |
    /// MOCK_FLAGS_DEVICE_PASID`.
    public init(flags raw: UInt32) throws(IOMMUFDError) {
        let flags = Flags(rawValue: raw)
        guard Flags.valid.isSuperset(of: flags) else {
            throw IOMMUFDError(
                .invalidArgument, rule: .IOMMUFD_804,
                "mock device: unknown flags 0x\(String(raw & ~Flags.valid.rawValue, radix: 16)) (NO_DIRTY 0x1 and PASID 0x4 exist)")
        }
        self.flags = flags
        number = Self.numbers.withLock { used in
            var next = 0
            while used.contains(next) { next += 1 }
            used.insert(next)
            return next
        }
    }

    deinit { _ = Self.numbers.withLock { $0.remove(number) } }

    public var description: String { "iommufd_mock\(number)" }

    /// `IOMMU_CAP_DIRTY_TRACKING` (`mock_domain_capable`).
    public var tracksDirty: Bool { !flags.contains(.noDirty) }

    /// `out_max_pasid_log2` (IOMMUFD-632): `MOCK_PASID_WIDTH` for a PASID device, else 0.
    public var maxPASIDLog2: UInt8 { flags.contains(.pasid) ? Self.pasidWidth : 0 }

    /// The domain attached now (nil: blocked).
    public var domain: IOMMUDomain? { attached.withLock { $0 } }

    /// `mock_domain_nop_attach`: `EINVAL` when the domain tracks dirty pages and this device
    /// cannot (IOMMUFD-804, -510).
    func attach(_ domain: IOMMUDomain, tracksDirty dirty: Bool) throws(IOMMUFDError) {
        guard !dirty || tracksDirty else {
            throw IOMMUFDError(
                .invalidArgument, rule: .IOMMUFD_804, "attach \(self) (MOCK_FLAGS_DEVICE_NO_DIRTY) to \(domain): the domain tracks dirty pages")
        }
        attached.withLock { $0 = domain }
    }

    /// Back to `mock_blocking_domain`.
    func block() { attached.withLock { $0 = nil } }

    /// `IOMMU_TEST_PASID_RESERVED`: the PASID whose second attach fails.
    public static let reservedPASID: UInt32 = 1024
    /// `mdev->pasid_1024_fake_error`.
    private let pasidFakeError = PThreadMutex(false)

    /// `mock_domain_set_dev_pasid_nop`: at PASID 1024 the first attach arms a fake failure that
    /// the next attach or replace takes (`ENOMEM`, to exercise the core's rollback, IOMMUFD-819);
    /// detaching (the blocking domain) disarms it.
    func setPASID(_ pasid: UInt32, blocking: Bool) throws(IOMMUFDError) {
        guard pasid == Self.reservedPASID else { return }
        let fail = pasidFakeError.withLock { armed -> Bool in
            if blocking {
                armed = false
                return false
            }
            defer { armed.toggle() }
            return armed
        }
        if fail {
            throw IOMMUFDError(.noMemory, rule: .IOMMUFD_819, "\(self): set_dev_pasid at PASID 1024 fails on purpose the second time (IOMMU_TEST_PASID_RESERVED)")
        }
    }
}
