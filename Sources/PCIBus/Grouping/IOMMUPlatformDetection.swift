/// Which IOMMU a machine has, guessed from the functions on its root buses, the way a reader of
/// `lspci` would: the kernel itself learns it from firmware tables (ACPI `DMAR` for VT-d, `IVRS`
/// for AMD-Vi, `IORT` for SMMUv3), which neither a dump nor sysfs carries.
public struct IOMMUPlatformDetection: Sendable, Equatable {
    public let kind: IOMMUPlatformKind
    /// Which function decided, or what was assumed.
    public let reason: String
    /// Set when the platform is a guess (the host bridge is unreadable or of an unknown vendor):
    /// what was assumed and how to override it.
    public let warning: String?

    /// AMD, ATI (AMD's older chipsets) and Hygon (licensed Zen) host bridges sit under AMD-Vi.
    static let amdVendors: Set<UInt16> = [0x1022, 0x1002, 0x1d94]
    /// Intel and Zhaoxin (VIA/Centaur x86, VT-d compatible DMAR) host bridges sit under VT-d.
    static let intelVendors: Set<UInt16> = [0x8086, 0x1d17]

    /// Detects the platform of a topology; see the type's comment for the evidence used.
    public init(_ topology: PCITopology) {
        let root = topology.rootBuses.flatMap { topology.buses[$0]?.functions ?? [] }.map { topology.functions[$0] }
        // AMD's IOMMU is itself a PCI function (class 0806); Intel's VT-d units are not.
        if let iommu = root.first(where: { $0.classID == PCIClass.iommu && $0.vendorID == 0x1022 }) {
            self.init(.amdVi, "AMD IOMMU function \(iommu.address) (\(iommu.vendorDeviceText))")
            return
        }
        let hostBridges = root.filter { $0.classID == PCIClass.hostBridge }
        if let bridge = hostBridges.first(where: { Self.amdVendors.contains($0.vendorID) }) {
            self.init(.amdVi, "AMD/Hygon host bridge \(bridge.address) (\(bridge.vendorDeviceText))")
            return
        }
        if let bridge = hostBridges.first(where: { Self.intelVendors.contains($0.vendorID) }) {
            self.init(.intelVTd, "Intel/Zhaoxin host bridge \(bridge.address) (\(bridge.vendorDeviceText))")
            return
        }
        if let phb = root.first(where: { $0.vendorID == 0x1014 && $0.classID == 0x0604 }) {
            self.init(.powerNV, "IBM POWER host bridge (PHB) \(phb.address) (\(phb.vendorDeviceText))")
            return
        }
        if let bridge = hostBridges.first, let guess = Self.x86Guess(root) {
            let readable = bridge.vendorID != 0xffff && bridge.vendorID != 0x0000
            let what =
                readable
                ? "host bridge \(bridge.address) is from vendor \(hex(bridge.vendorID, width: 4)), not a known x86 IOMMU vendor"
                : "host bridge \(bridge.address) reads vendor \(hex(bridge.vendorID, width: 4)) (unreadable)"
            self.init(
                guess.kind, "assumed: \(what); \(guess.why)",
                warning: "\(what): assumed \(guess.kind) because \(guess.why); pass --platform "
                    + "\(IOMMUPlatformKind.allCases.map(\.rawValue).joined(separator: "|")) to override")
            return
        }
        self.init(.armSMMUv3, "no Intel/AMD host bridge or IBM PHB on a root bus: assuming an ARM SMMUv3 system")
    }

    private init(_ kind: IOMMUPlatformKind, _ reason: String, warning: String? = nil) {
        self.kind = kind
        self.reason = reason
        self.warning = warning
    }

    /// The most plausible x86 IOMMU when the host bridge does not say, or nil when nothing on the
    /// root buses looks x86 (no IOMMU function, ISA bridge or function of an x86 vendor).
    private static func x86Guess(_ root: [PCIFunction]) -> (kind: IOMMUPlatformKind, why: String)? {
        if let iommu = root.first(where: { $0.classID == PCIClass.iommu }) {
            return (.amdVi, "\(iommu.address) is an IOMMU function (class 0806), which only AMD's IOMMU exposes on PCI")
        }
        let amd = root.filter { amdVendors.contains($0.vendorID) }.count
        let intel = root.filter { intelVendors.contains($0.vendorID) }.count
        if amd > intel {
            return (.amdVi, "\(amd) of the root-bus functions are AMD's and \(intel) Intel's")
        }
        if intel > 0 {
            return (.intelVTd, "\(intel) of the root-bus functions are Intel's and \(amd) AMD's")
        }
        if let isa = root.first(where: { $0.classID == PCIClass.isaBridge }) {
            return (.intelVTd, "\(isa.address) is an ISA bridge (an x86 chipset) and VT-d is the most common x86 IOMMU")
        }
        return nil
    }
}
