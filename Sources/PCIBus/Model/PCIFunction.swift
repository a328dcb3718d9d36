/// One PCI function with its config space decoded: the Swift value everything above `PCIBus`
/// works on (never a libpci pointer). Mirrors the fields of `struct pci_dev` that enumeration
/// fills in (`pci_setup_device`, `pci_init_capabilities`).
public struct PCIFunction: Sendable, Identifiable {
    public var id: PCIAddress { address }
    public let address: PCIAddress
    public let config: PCIConfigSpace

    public let vendorID: UInt16
    public let deviceID: UInt16
    public let subsystemVendorID: UInt16
    public let subsystemID: UInt16
    /// 24-bit class code: base class, subclass, programming interface.
    public let classCode: UInt32
    public let revision: UInt8
    /// Header layout (low 7 bits of the header type); nil for a layout the spec does not define.
    public let headerType: PCIHeaderType?
    /// `pdev->multifunction`: header bit 7, or any function other than 0 (as `pci_scan_slot` sets it).
    public let isMultifunction: Bool

    public let capabilities: PCICapabilityList
    public let extendedCapabilities: PCICapabilityList
    /// Offset of the PCI Express capability (`pdev->pcie_cap`), nil for conventional PCI.
    public let pcieCapabilityOffset: Int?
    public let pciePortType: PCIePortType?
    public let acs: ACSCapability?
    /// Primary, secondary and subordinate bus numbers of a bridge (type 1 or CardBus header).
    public let bridgeBuses: BridgeBusNumbers?
    /// Function Level Reset through PCIe Device Capabilities bit 28 (`pcie_has_flr`).
    public let hasPCIeFLR: Bool
    /// Function Level Reset through the Advanced Features capability (`pci_af_flr`).
    public let hasAdvancedFeaturesFLR: Bool
    /// MSI: number of vectors the function can request; nil without an MSI capability.
    public let msiVectors: Int?
    /// MSI-X table size; nil without an MSI-X capability.
    public let msixTableSize: Int?

    /// What the host's kernel says, when the source is a live host (dumps carry neither).
    public var driver: String?
    public var kernelIOMMUGroup: Int?
    /// Names from pci.ids, when looked up.
    public var names: PCINames?
    /// The device model that provides this function, for a machine's virtual device (nil for a
    /// function read from a dump or sysfs): what commands mark as virtual.
    public var virtualModel: String?

    public struct BridgeBusNumbers: Sendable, Equatable, Codable {
        public let primary: UInt8
        public let secondary: UInt8
        public let subordinate: UInt8
    }

    public init(address: PCIAddress, config: PCIConfigSpace) {
        self.address = address
        self.config = config
        vendorID = config.u16(PCIRegister.vendorID)
        deviceID = config.u16(PCIRegister.deviceID)
        classCode = config.u32(PCIRegister.revision) >> 8
        revision = config.u8(PCIRegister.revision)
        let rawHeader = config.u8(PCIRegister.headerType)
        headerType = PCIHeaderType(rawValue: rawHeader & 0x7f)
        isMultifunction = rawHeader & PCIRegister.headerTypeMultifunction != 0 || address.function > 0
        if headerType == .normal {
            subsystemVendorID = config.u16(PCIRegister.subsystemVendorID)
            subsystemID = config.u16(PCIRegister.subsystemID)
        } else {
            subsystemVendorID = 0
            subsystemID = 0
        }
        let standard = PCICapabilityList.standard(in: config, headerType: headerType)
        capabilities = standard
        if let bridgeHeader = headerType, bridgeHeader != .normal {
            bridgeBuses = BridgeBusNumbers(
                primary: config.u8(PCIRegister.primaryBus), secondary: config.u8(PCIRegister.secondaryBus),
                subordinate: config.u8(PCIRegister.subordinateBus))
        } else {
            bridgeBuses = nil
        }
        let pcie = standard.first(PCICapabilityID.pciExpress)
        pcieCapabilityOffset = pcie?.offset
        if let pcie {
            pciePortType = PCIePortType(rawValue: UInt8((config.u16(pcie.offset + 2) >> 4) & 0xf))
        } else {
            pciePortType = nil
        }
        // The kernel reads extended space only for PCIe (or PCI-X 2.0) functions
        // (`pci_cfg_space_size`); lspci walks whatever was captured. Walk what was captured so
        // anomalies are reported, but only a PCIe function's ACS capability counts.
        let extended = PCICapabilityList.extended(in: config)
        extendedCapabilities = extended
        if pcie != nil, let acsCap = extended.first(PCIExtendedCapabilityID.acs) {
            acs = ACSCapability(
                offset: acsCap.offset, capability: ACSFlags(rawValue: config.u16(acsCap.offset + 4)),
                control: ACSFlags(rawValue: config.u16(acsCap.offset + 6)))
        } else {
            acs = nil
        }
        hasPCIeFLR = pcie.map { config.u32($0.offset + 4) & (1 << 28) != 0 } ?? false
        // PCI_AF_CAP_TP_FLR (bit 1) together with PCI_AF_CAP_FLR (bit 0) at AF cap + 3.
        hasAdvancedFeaturesFLR =
            standard.first(PCICapabilityID.advancedFeatures).map { config.u8($0.offset + 3) & 0x3 == 0x3 } ?? false
        msiVectors = standard.first(PCICapabilityID.msi).map {
            1 << Int(min((config.u16($0.offset + 2) >> 1) & 0x7, 5))
        }
        msixTableSize = standard.first(PCICapabilityID.msix).map { Int(config.u16($0.offset + 2) & 0x7ff) + 1 }
    }

    /// Function Level Reset by either mechanism.
    public var supportsFLR: Bool { hasPCIeFLR || hasAdvancedFeaturesFLR }

    public var isBridge: Bool { bridgeBuses != nil }
    public var isPCIe: Bool { pcieCapabilityOffset != nil }
    public var baseClass: UInt8 { UInt8(classCode >> 16) }
    /// Base class and subclass, as `lspci -n` prints them (`0604`).
    public var classID: UInt16 { UInt16(classCode >> 8) }
    /// `lspci -n`'s class text (`0604`).
    public var classIDText: String { hex(classID, width: 4) }
    public var vendorDeviceText: String { hex(vendorID, width: 4) + ":" + hex(deviceID, width: 4) }
}

/// Human-readable names from the pci.ids database.
public struct PCINames: Sendable, Equatable, Codable {
    public var vendor: String?
    public var device: String?
    public var className: String?
    public var subsystem: String?

    public init(vendor: String? = nil, device: String? = nil, className: String? = nil, subsystem: String? = nil) {
        self.vendor = vendor
        self.device = device
        self.className = className
        self.subsystem = subsystem
    }
}
