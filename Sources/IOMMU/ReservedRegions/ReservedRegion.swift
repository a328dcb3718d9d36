/// `enum iommu_resv_type` (RR-01), in the kernel's order: the order decides how regions that
/// start at the same address sort (RR-03).
public enum ReservedRegionType: Int, Sendable, Codable, CaseIterable, Comparable {
    /// Must stay identity-mapped (Intel RMRR, AMD unity map).
    case direct = 0
    /// Identity-mapped for DMA-API domains, may be dropped when the device is assigned (RMRRs of
    /// USB and graphics devices).
    case directRelaxable = 1
    /// Never mappable (AMD HyperTransport hole, host-bridge windows).
    case reserved = 2
    /// Hardware MSI window, untranslated.
    case msi = 3
    /// Software-managed MSI window the OS maps itself (ARM SMMU).
    case softwareMSI = 4

    /// `iommu_group_resv_type_string[]` (SYS-02): both MSI kinds print `msi`.
    public var sysfsName: String {
        switch self {
        case .direct: "direct"
        case .directRelaxable: "direct-relaxable"
        case .reserved: "reserved"
        case .msi, .softwareMSI: "msi"
        }
    }

    /// Parses a manifest's type name: the sysfs names, plus `sw-msi` for the software window.
    public init?(name: String) {
        switch name {
        case "direct": self = .direct
        case "direct-relaxable": self = .directRelaxable
        case "reserved": self = .reserved
        case "msi": self = .msi
        case "sw-msi": self = .softwareMSI
        default: return nil
        }
    }

    public static func < (lhs: Self, rhs: Self) -> Bool { lhs.rawValue < rhs.rawValue }
}

/// One `struct iommu_resv_region`: an IOVA range `[start, last]` (inclusive, as sysfs prints it)
/// and its type. Ranges are kept inclusive so a region ending at 2^64 - 1 is representable.
public struct ReservedRegion: Sendable, Equatable, Hashable, CustomStringConvertible {
    public let start: UInt64
    public let last: UInt64
    public let type: ReservedRegionType

    /// `nil` when `last < start` (an empty or inverted region the kernel could not describe).
    public init?(start: UInt64, last: UInt64, type: ReservedRegionType) {
        guard start <= last else { return nil }
        self.start = start
        self.last = last
        self.type = type
    }

    /// One line of `/sys/kernel/iommu_groups/N/reserved_regions`: `"0x%016llx 0x%016llx %s\n"` (SYS-02).
    public var sysfsLine: String { "0x\(hex16(start)) 0x\(hex16(last)) \(type.sysfsName)\n" }

    public var description: String { "[0x\(String(start, radix: 16)), 0x\(String(last, radix: 16))] \(type.sysfsName)" }
}

func hex16(_ value: UInt64) -> String {
    let digits = String(value, radix: 16)
    return String(repeating: "0", count: max(0, 16 - digits.count)) + digits
}
