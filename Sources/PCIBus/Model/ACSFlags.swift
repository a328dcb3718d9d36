/// ACS capability/control bits (`PCI_ACS_*` in `include/uapi/linux/pci_regs.h`, spec §2.1).
public struct ACSFlags: OptionSet, Sendable, Hashable, Codable, CustomStringConvertible {
    public let rawValue: UInt16
    public init(rawValue: UInt16) { self.rawValue = rawValue }

    public static let sourceValidation = ACSFlags(rawValue: 0x0001)
    public static let translationBlocking = ACSFlags(rawValue: 0x0002)
    public static let requestRedirect = ACSFlags(rawValue: 0x0004)
    public static let completionRedirect = ACSFlags(rawValue: 0x0008)
    public static let upstreamForwarding = ACSFlags(rawValue: 0x0010)
    public static let egressControl = ACSFlags(rawValue: 0x0020)
    public static let directTranslated = ACSFlags(rawValue: 0x0040)

    /// `REQ_ACS_FLAGS` of `drivers/iommu/iommu.c`: what `pci_device_group` requires.
    public static let requiredForIsolation: ACSFlags = [
        .sourceValidation, .requestRedirect, .completionRedirect, .upstreamForwarding,
    ]

    /// Bits lspci and the kernel name, in register order.
    static let names: [(ACSFlags, String)] = [
        (.sourceValidation, "SV"), (.translationBlocking, "TB"), (.requestRedirect, "RR"),
        (.completionRedirect, "CR"), (.upstreamForwarding, "UF"), (.egressControl, "EC"),
        (.directTranslated, "DT"),
    ]

    /// `SV RR CR UF`-style list; `none` when empty.
    public var description: String {
        let set = Self.names.filter { contains($0.0) }.map(\.1)
        return set.isEmpty ? "none" : set.joined(separator: " ")
    }

    public init(names: [String]) {
        self = ACSFlags(Self.names.filter { names.contains($0.1) }.map(\.0))
    }
}

/// The ACS extended capability of one function as captured: where it is and its two registers.
public struct ACSCapability: Sendable, Equatable {
    /// Offset of the ACS extended capability header.
    public let offset: Int
    /// `PCI_ACS_CAP` (cap + 4).
    public let capability: ACSFlags
    /// `PCI_ACS_CTRL` (cap + 6), as read from the source.
    public let control: ACSFlags
}
