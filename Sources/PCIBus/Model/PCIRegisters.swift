/// Config-space register offsets and capability IDs from `include/uapi/linux/pci_regs.h`.
public enum PCIRegister {
    public static let vendorID = 0x00
    public static let deviceID = 0x02
    public static let command = 0x04
    public static let status = 0x06
    public static let revision = 0x08
    public static let classProgIF = 0x09
    public static let headerType = 0x0e
    public static let subsystemVendorID = 0x2c
    public static let subsystemID = 0x2e
    public static let capabilityPointer = 0x34
    public static let cardbusCapabilityPointer = 0x14
    public static let primaryBus = 0x18
    public static let secondaryBus = 0x19
    public static let subordinateBus = 0x1a

    /// `PCI_STATUS_CAP_LIST`: the function has a capability list.
    public static let statusCapabilityList: UInt16 = 0x10
    /// `PCI_HEADER_TYPE_MFD`.
    public static let headerTypeMultifunction: UInt8 = 0x80
    /// `PCI_CFG_SPACE_SIZE` and `PCI_CFG_SPACE_EXP_SIZE`.
    public static let legacySpaceSize = 256
    public static let extendedSpaceSize = 4096
}

/// Standard capability IDs (`PCI_CAP_ID_*`).
public enum PCICapabilityID {
    public static let powerManagement: UInt16 = 0x01
    public static let msi: UInt16 = 0x05
    public static let pcix: UInt16 = 0x07
    public static let subsystemID: UInt16 = 0x0d
    public static let pciExpress: UInt16 = 0x10
    public static let msix: UInt16 = 0x11
    public static let advancedFeatures: UInt16 = 0x13
}

/// Extended capability IDs (`PCI_EXT_CAP_ID_*`).
public enum PCIExtendedCapabilityID {
    public static let aer: UInt16 = 0x01
    public static let acs: UInt16 = 0x0d
    public static let sriov: UInt16 = 0x10
}

/// Header types (`PCI_HEADER_TYPE_*`, low 7 bits).
public enum PCIHeaderType: UInt8, Sendable, Codable {
    case normal = 0
    case bridge = 1
    case cardbus = 2
}

/// `PCI_COMMAND` bits (`include/uapi/linux/pci_regs.h`).
public enum PCICommand {
    /// `PCI_COMMAND_IO`: I/O space decode.
    public static let io: UInt32 = 0x1
    /// `PCI_COMMAND_MEMORY`: memory space decode.
    public static let memory: UInt32 = 0x2
    /// `PCI_COMMAND_MASTER`: the function may issue DMA.
    public static let busMaster: UInt32 = 0x4
    /// `PCI_COMMAND_INTX_DISABLE`.
    public static let interruptDisable: UInt32 = 0x400
}
