import PCIBus

/// What one IOMMU implementation brings to the core: the geometry and page sizes of the domains
/// it allocates, the reserved regions it reports for every device (`ops->get_resv_regions`), how
/// it types firmware-described regions, whether it remaps interrupts, and the default domain type
/// the kernel gives its groups. Data, chosen per machine and overridable in fixture manifests.
public struct PlatformProfile: Sendable, Equatable {
    /// Short name used on the command line and in manifests (`vt-d-48`).
    public let name: String
    /// What it is, for reports.
    public let title: String
    public let geometry: DomainGeometry
    public let pageSizes: PageSizeBitmap
    /// log2 of the smallest I/O page (12; 11 for the iommufd mock's 2 KiB pages).
    public let pageShift: Int
    /// Isolated MSIs (`IOMMU_CAP_INTR_REMAP` / `irq_domain_check_msi_remap`): type1 refuses groups
    /// without it unless `allow_unsafe_interrupts` (T1-50).
    public let interruptRemapping: Bool
    public let enforcesCacheCoherency: Bool
    /// The kernel's global default (`iommu_def_domain_type`): `DMA-FQ` on x86 (lazy), `DMA` on arm64.
    public let defaultDomainType: IOMMUDomainType
    /// Set when the driver has a fixed `ops->default_domain`: only that type is ever accepted (DT-09).
    public let fixedDefaultDomain: Bool
    /// `identity_domain` / `domain_alloc_identity` exists (DT-08).
    public let supportsIdentity: Bool
    /// `ops->blocked_domain` exists; without it the blocking domain is an empty paging domain (OWN-05).
    public let supportsBlockedDomain: Bool
    /// Regions reported for every device (MSI windows, the HyperTransport hole).
    public let platformRegions: [ReservedRegion]
    public let firmwareRegions: FirmwareRegionRule
    /// `CONFIG_INTEL_IOMMU_FLOPPY_WA` (`def_bool y` on x86): `intel_iommu_get_resv_regions` reports
    /// 0–16 MiB as `direct-relaxable` for an ISA bridge (`class >> 8 == PCI_CLASS_BRIDGE_ISA`), for
    /// floppy DMA that bypasses the DMA API. A manifest turns it off with `iommu.floppyWorkaround`.
    public internal(set) var floppyWorkaround = false

    /// The ISA/floppy region of `floppyWorkaround`: `iommu_alloc_resv_region(0, 1UL << 24, ...)`.
    static let isaFloppyRegion = ReservedRegion(start: 0, last: (1 << 24) - 1, type: .directRelaxable)!

    /// How the driver types a firmware-described identity region (RMRR, IVMD unity map, IORT RMR).
    public enum FirmwareRegionRule: String, Sendable, Equatable {
        /// Intel RMRR: `direct-relaxable` for USB and graphics devices, else `direct` (RR-04).
        case intelRMRR
        /// AMD IVMD unity maps and ARM IORT RMRs: `direct`.
        case direct
    }

    /// Reserved regions of one function (`ops->get_resv_regions`), in the order
    /// `intel_iommu_get_resv_regions` lists them: firmware regions first, typed by `firmwareRegions`
    /// unless the manifest gave a type, then the ISA/floppy region, then the platform's own.
    public func reservedRegions(of function: PCIFunction, firmware: [FirmwareRegion]) -> [ReservedRegion] {
        let isaBridge = function.classID == PCIClass.isaBridge
        return firmware.compactMap { region in
            ReservedRegion(start: region.start, last: region.last, type: region.type ?? firmwareType(for: function))
        } + (floppyWorkaround && isaBridge ? [Self.isaFloppyRegion] : []) + platformRegions
    }

    private func firmwareType(for function: PCIFunction) -> ReservedRegionType {
        switch firmwareRegions {
        case .direct: return .direct
        case .intelRMRR:
            // device_rmrr_is_relaxable(): USB controllers (0x0c03) and display controllers (0x03).
            let isUSB = function.classCode >> 8 == 0x0C03
            let isGraphics = function.classCode >> 16 == 0x03
            return isUSB || isGraphics ? .directRelaxable : .direct
        }
    }
}

/// A firmware-described identity range from a fixture manifest (RMRR, unity map, RMR): inclusive
/// bounds and, optionally, a type that overrides the platform's rule.
public struct FirmwareRegion: Sendable, Equatable {
    public let start: UInt64
    public let last: UInt64
    public let type: ReservedRegionType?

    public init(start: UInt64, last: UInt64, type: ReservedRegionType? = nil) {
        self.start = start
        self.last = last
        self.type = type
    }
}
