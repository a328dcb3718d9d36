import IOMMU
import KernelRules
import SystemPackage

/// `mock_ops` (`drivers/iommu/iommufd/selftest.c`): the selftest's IOMMU driver, whose paging
/// domains (`mock_domain_alloc_paging_flags`, IOMMUFD-803, -804) are generic page tables with a
/// `MOCK_PAGE_SIZE` (2 KiB) granule over the mock aperture (`MOCK_IOMMUPT_DEFAULT`), or with
/// 1 MiB leaves over the table's own wide aperture (`MOCK_IOMMUPT_HUGE`).
enum IOMMUFDMockIOMMU {
    /// `MOCK_IOMMUPT_DEFAULT`'s domains.
    static let profile = PlatformProfile.mock()
    /// `MOCK_IOMMUPT_HUGE`'s domains.
    static let hugeProfile = PlatformProfile.mockIOMMUPTHuge

    /// `MOCK_APERTURE_START`, `MOCK_APERTURE_LAST`, `MOCK_PAGE_SIZE` (IOMMUFD-802).
    static let apertureStart: UInt64 = 1 << 24
    static let apertureLast: UInt64 = (1 << 31) - 1
    static let pageSize: UInt64 = 2048

    /// `IOMMU_HWPT_DATA_SELFTEST`: `struct iommu_hwpt_selftest { __u32 iotlb; __u32 pagetable_type; }`.
    static let hwptDataSelftest: UInt32 = 0xdead

    /// `struct iommu_hwpt_selftest.pagetable_type`.
    enum PageTableType: UInt32, Sendable {
        case `default` = 0
        case huge = 1
    }

    /// `domain->owner == &mock_ops`.
    static func owns(_ domain: IOMMUDomain) -> Bool { domain.ops == profile.name || domain.ops == hugeProfile.name }

    /// `mock_domain_alloc_paging_flags`'s checks (IOMMUFD-804): flags outside NEST_PARENT,
    /// DIRTY_TRACKING and PASID, or DIRTY_TRACKING for a NO_DIRTY device → `EOPNOTSUPP`; user data
    /// of a type other than NONE and SELFTEST → `EOPNOTSUPP`.
    static func checkAllocation(for device: IOMMUFDMockDevice, flags: HWPTAllocFlags, dataType: UInt32) throws(IOMMUFDError) {
        let paging: HWPTAllocFlags = [.nestParent, .dirtyTracking, .pasid]
        guard paging.isSuperset(of: flags), !(flags.contains(.dirtyTracking) && !device.tracksDirty) else {
            throw IOMMUFDError(
                .notSupported, rule: .IOMMUFD_804,
                "mock domain for \(device): flags 0x\(String(flags.rawValue, radix: 16))\(device.tracksDirty ? "" : " on a MOCK_FLAGS_DEVICE_NO_DIRTY device"): the mock allocates NEST_PARENT, DIRTY_TRACKING and PASID paging domains")
        }
        guard dataType == 0 || dataType == hwptDataSelftest else {
            throw IOMMUFDError(.notSupported, rule: .IOMMUFD_804, "mock domain for \(device): data_type 0x\(String(dataType, radix: 16)) is neither NONE nor SELFTEST (0xdead)")
        }
    }

    /// `mock_domain_alloc_pgtable`: an empty domain of `pagetable_type`; a type the mock does not
    /// have → `EOPNOTSUPP`.
    static func allocateDomain(for device: IOMMUFDMockDevice, pageTable: UInt32) throws(IOMMUFDError) -> IOMMUDomain {
        guard let type = PageTableType(rawValue: pageTable) else {
            throw IOMMUFDError(.notSupported, rule: .IOMMUFD_804, "mock domain for \(device): pagetable_type \(pageTable) (DEFAULT 0 and HUGE 1 exist)")
        }
        return try lowerCall { () throws(IOMMUError) in
            try IOMMUDomain(type: .unmanaged, profile: type == .huge ? hugeProfile : profile)
        }
    }
}

/// `enum iommufd_hwpt_alloc_flags` (§5).
public struct HWPTAllocFlags: OptionSet, Sendable, Hashable {
    public let rawValue: UInt32
    public init(rawValue: UInt32) { self.rawValue = rawValue }
    public static let nestParent = HWPTAllocFlags(rawValue: 1 << 0)
    public static let dirtyTracking = HWPTAllocFlags(rawValue: 1 << 1)
    public static let faultIDValid = HWPTAllocFlags(rawValue: 1 << 2)
    public static let pasid = HWPTAllocFlags(rawValue: 1 << 3)
}
