import PCIBus

/// The profiles this project models (RR-04, IOMMUFD-03). Addresses are the drivers' own constants.
extension PlatformProfile {
    /// `IOAPIC_RANGE_START`..`IOAPIC_RANGE_END` (VT-d) and `MSI_RANGE_START`..`MSI_RANGE_END` (AMD-Vi).
    static let x86MSIWindow = ReservedRegion(start: 0xFEE0_0000, last: 0xFEEF_FFFF, type: .msi)!

    /// Intel VT-d second-level tables, 39-bit (3-level) or 48-bit (4-level) address width; ISA
    /// bridges get the floppy region unless `floppyWorkaround` is off.
    public static func vtd(addressWidth: Int = 48, interruptRemapping: Bool = true, floppyWorkaround: Bool = true) -> PlatformProfile {
        PlatformProfile(
            name: "vt-d-\(addressWidth)" + (interruptRemapping ? "" : "-noir"),
            title: "Intel VT-d, \(addressWidth)-bit address width" + (interruptRemapping ? ", interrupt remapping" : ", NO interrupt remapping"),
            geometry: .addressWidth(addressWidth), pageSizes: .x86Large, pageShift: 12,
            interruptRemapping: interruptRemapping, enforcesCacheCoherency: true, defaultDomainType: .dmaFQ,
            fixedDefaultDomain: false, supportsIdentity: true, supportsBlockedDomain: true, platformRegions: [x86MSIWindow], firmwareRegions: .intelRMRR,
            floppyWorkaround: floppyWorkaround)
    }

    /// AMD-Vi with the 4K|2M|1G page sizes of its v2 table (the v1 table's replicated-PTE sizes
    /// are not modelled); MSI window and HyperTransport hole on every device.
    public static func amdVi(interruptRemapping: Bool = true) -> PlatformProfile {
        PlatformProfile(
            name: interruptRemapping ? "amd-vi" : "amd-vi-noir",
            title: "AMD-Vi, 48-bit address width" + (interruptRemapping ? ", interrupt remapping" : ", NO interrupt remapping"),
            geometry: .addressWidth(48), pageSizes: .x86Large,
            pageShift: 12, interruptRemapping: interruptRemapping, enforcesCacheCoherency: true, defaultDomainType: .dmaFQ,
            fixedDefaultDomain: false, supportsIdentity: true, supportsBlockedDomain: true,
            platformRegions: [x86MSIWindow, ReservedRegion(start: 0xFD_0000_0000, last: 0xFF_FFFF_FFFF, type: .reserved)!],
            firmwareRegions: .direct)
    }

    /// ARM SMMUv3 with a 4 KiB granule; the software-managed MSI window at `MSI_IOVA_BASE`.
    public static func smmuv3(inputBits: Int = 48) -> PlatformProfile {
        PlatformProfile(
            name: inputBits == 48 ? "smmuv3" : "smmuv3-\(inputBits)", title: "ARM SMMUv3, \(inputBits)-bit input size",
            geometry: .addressWidth(inputBits), pageSizes: .x86Large, pageShift: 12, interruptRemapping: true,
            enforcesCacheCoherency: false, defaultDomainType: .dma, fixedDefaultDomain: false, supportsIdentity: true, supportsBlockedDomain: true,
            platformRegions: [ReservedRegion(start: 0x800_0000, last: 0x80F_FFFF, type: .softwareMSI)!], firmwareRegions: .direct)
    }

    /// An IOMMU whose domains do not force their 32-bit aperture: DMA outside it bypasses
    /// translation, so it cannot isolate (the project's force_aperture policy, T1-44).
    public static let bypass = PlatformProfile(
        name: "bypass", title: "bypassing IOMMU (force_aperture = false, 32-bit aperture)",
        geometry: try! DomainGeometry(apertureStart: 0, apertureEnd: 0xFFFF_FFFF, forceAperture: false),
        pageSizes: PageSizeBitmap(sizes: [PageSizeBitmap.kib4]), pageShift: 12, interruptRemapping: false,
        enforcesCacheCoherency: false, defaultDomainType: .identity, fixedDefaultDomain: false, supportsIdentity: true, supportsBlockedDomain: false,
        platformRegions: [], firmwareRegions: .direct)

    /// The iommufd selftest's mock IOMMU (IOMMUFD-802, -803): aperture `MOCK_APERTURE_START`
    /// (16 MiB) to `MOCK_APERTURE_LAST` (2 GiB - 1), `MOCK_PAGE_SIZE` (2 KiB) I/O pages (plus 1 MiB
    /// with `hugeIOVA`, the older mock's `MOCK_FLAGS_DEVICE_HUGE_IOVA`), and a fixed blocking
    /// default domain.
    public static func mock(hugeIOVA: Bool = false) -> PlatformProfile {
        PlatformProfile(
            name: hugeIOVA ? "mock-huge" : "mock", title: "iommufd selftest mock IOMMU",
            geometry: try! DomainGeometry(apertureStart: 1 << 24, apertureEnd: (1 << 31) - 1, forceAperture: true),
            pageSizes: PageSizeBitmap(sizes: hugeIOVA ? [2048, 2048 * 512] : [2048]), pageShift: 11,
            interruptRemapping: true, enforcesCacheCoherency: true, defaultDomainType: .blocked, fixedDefaultDomain: true,
            supportsIdentity: false, supportsBlockedDomain: true, platformRegions: [], firmwareRegions: .direct)
    }

    /// The newest selftest mock's `MOCK_IOMMUPT_HUGE` page table (IOMMUFD-803), allocated by
    /// `IOMMU_HWPT_ALLOC` with `IOMMU_HWPT_DATA_SELFTEST`: the generic AMDv1 table's wide aperture
    /// (`hw_max_vasz_lg2` 56, not overridden to the mock aperture) and `MOCK_HUGE_PAGE_SIZE`
    /// (1 MiB) leaves. The kernel reports `MOCK_HUGE_PAGE_SIZE | PAGE_SIZE`; the simulated table
    /// keeps its 2 KiB granule, so the smallest page it reports is 2 KiB, not 4 KiB.
    public static let mockIOMMUPTHuge = PlatformProfile(
        name: "mock-iommupt-huge", title: "iommufd selftest mock IOMMU, MOCK_IOMMUPT_HUGE page table",
        geometry: .addressWidth(56), pageSizes: PageSizeBitmap(sizes: [2048, 2048 * 512]), pageShift: 11,
        interruptRemapping: true, enforcesCacheCoherency: true, defaultDomainType: .blocked, fixedDefaultDomain: true,
        supportsIdentity: false, supportsBlockedDomain: true, platformRegions: [], firmwareRegions: .direct)

    /// Every profile name `named(_:)` accepts.
    public static let names = ["vt-d-48", "vt-d-39", "vt-d-48-noir", "vt-d-39-noir", "amd-vi", "amd-vi-noir", "smmuv3", "smmuv3-NN", "bypass", "mock", "mock-huge"]

    /// Looks a profile up by name: `vt-d` (= `vt-d-48`), `vt-d-39`, `-noir` for interrupt remapping
    /// off, `amd-vi` (`amd-vi-noir`), `smmuv3` or `smmuv3-NN` (input bits), `bypass`, `mock`, `mock-huge`.
    public static func named(_ name: String) -> PlatformProfile? {
        switch name {
        case "vt-d", "vt-d-48": return vtd()
        case "vt-d-39": return vtd(addressWidth: 39)
        case "vt-d-noir", "vt-d-48-noir": return vtd(interruptRemapping: false)
        case "vt-d-39-noir": return vtd(addressWidth: 39, interruptRemapping: false)
        case "amd-vi": return amdVi()
        case "amd-vi-noir": return amdVi(interruptRemapping: false)
        case "smmuv3": return smmuv3()
        case "bypass": return bypass
        case "mock": return mock()
        case "mock-huge": return mock(hugeIOVA: true)
        default:
            if name.hasPrefix("smmuv3-"), let bits = Int(name.dropFirst(7)), (32...52).contains(bits) { return smmuv3(inputBits: bits) }
            return nil
        }
    }

    /// The profile of a platform the bus layer detected; `nil` where the project has no IOMMU
    /// model (POWER's PowerNV groups are out of scope).
    public static func `default`(for platform: IOMMUPlatformKind) -> PlatformProfile? {
        switch platform {
        case .intelVTd: vtd()
        case .amdVi: amdVi()
        case .armSMMUv3: smmuv3()
        case .powerNV: nil
        }
    }
}
