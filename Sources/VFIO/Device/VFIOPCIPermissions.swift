import PCIBus

/// `struct perm_bits` of `drivers/vfio/pci/vfio_pci_config.c`: for each byte of a capability (or
/// of the basic header), which bits are virtual — read from and written to `vconfig`, never the
/// device — and which the user may write at all; plus the capability's read and write handlers.
/// The tables are shared by every device (`cap_perms[]`, `ecap_perms[]`), except MSI's, which
/// `vfio_msi_cap_len` builds per device from its Message Control (VPCI-110, VPCI-130, VPCI-140).
struct VFIOPCIPermissions: Sendable {
    /// The `readfn` a table names.
    enum Reader: Sendable {
        /// `vfio_default_config_read`: virtual bits from vconfig, the rest from the device (VPCI-111).
        case standard
        /// `vfio_basic_config_read`: `vfio_bar_fixup` first for a BAR, then the default read.
        case basic
        /// `vfio_msi_config_read`: the Message Control fix-up, then the default read.
        case msi
        /// `vfio_direct_config_read`: the device, except a capability's header (VPCI-113).
        case direct
        /// `vfio_raw_config_read`: the device, untouched (VPCI-114).
        case raw
    }

    /// The `writefn` a table names; nil: every write is dropped and counts as done.
    enum Writer: Sendable {
        /// `vfio_default_config_write` (VPCI-112).
        case standard
        /// `vfio_basic_config_write`: COMMAND's side effects and the virtual INTx Disable (VPCI-122, 123).
        case basic
        /// `vfio_pm_config_write`: PMCSR power-state changes (VPCI-131).
        case powerManagement
        /// `vfio_vpd_config_write` (VPCI-136).
        case vpd
        /// `vfio_exp_config_write`: Initiate FLR and Max_Read_Request_Size (VPCI-134, 135).
        case express
        /// `vfio_af_config_write`: AF Initiate FLR (VPCI-135).
        case advancedFeatures
        /// `vfio_msi_config_write` (VPCI-132).
        case msi
        /// `vfio_raw_config_write`: straight to the device (VPCI-137, 143).
        case raw
    }

    /// Per byte from the capability's start: bits kept in vconfig.
    var virt: [UInt8]
    /// Per byte from the capability's start: bits the user may change.
    var write: [UInt8]
    var reader: Reader
    var writer: Writer?

    /// A table without permission bits (`{ .readfn = ..., .writefn = ... }` alone).
    init(reader: Reader, writer: Writer? = nil) {
        virt = []
        write = []
        self.reader = reader
        self.writer = writer
    }

    /// `alloc_perm_bits`: `size` rounded up to a dword, all readable, none writable, none virtual,
    /// with the default handlers.
    init(size: Int, reader: Reader = .standard, writer: Writer? = .standard) {
        let rounded = (size + 3) & ~3
        virt = Array(repeating: 0, count: rounded)
        write = Array(repeating: 0, count: rounded)
        self.reader = reader
        self.writer = writer
    }

    /// `p_setb`/`p_setw`/`p_setd`: `width` bytes at `offset`, little-endian.
    mutating func set(_ offset: Int, width: Int, virt virtBits: UInt32, write writeBits: UInt32) {
        for i in 0..<width {
            virt[offset + i] = UInt8(truncatingIfNeeded: virtBits >> (8 * UInt32(i)))
            write[offset + i] = UInt8(truncatingIfNeeded: writeBits >> (8 * UInt32(i)))
        }
    }

    /// The `count` bytes of a mask from `offset`, little-endian. A byte past the table (only when
    /// two capabilities of one id abut, the "XXX" case `vfio_find_cap_start` admits, where the
    /// kernel would read past its allocation) counts as neither virtual nor writable.
    func mask(_ bytes: [UInt8], _ offset: Int, _ count: Int) -> UInt32 {
        var value: UInt32 = 0
        for i in 0..<count where offset + i < bytes.count {
            value |= UInt32(bytes[offset + i]) << (8 * UInt32(i))
        }
        return value
    }

    static let allVirt: UInt32 = 0xffff_ffff
    static let allWrite: UInt32 = 0xffff_ffff

    // MARK: The shared tables (vfio_pci_init_perm_bits)

    /// `init_pci_cap_basic_perm` (VPCI-120).
    static let basic: VFIOPCIPermissions = {
        var perm = VFIOPCIPermissions(size: VFIOPCICapabilityMap.standardHeaderSize, reader: .basic, writer: .basic)
        perm.set(0x00, width: 2, virt: 0xffff, write: 0)  // vendor: virtualised for SR-IOV functions
        perm.set(0x02, width: 2, virt: 0xffff, write: 0)  // device
        perm.set(0x04, width: 2, virt: PCICommand.interruptDisable, write: 0xffff)
        perm.set(0x06, width: 2, virt: UInt32(PCIRegister.statusCapabilityList), write: 0)
        perm.set(0x0c, width: 1, virt: 0, write: 0xff)  // cache line size
        perm.set(0x0d, width: 1, virt: 0, write: 0xff)  // latency timer
        perm.set(0x0f, width: 1, virt: 0, write: 0xff)  // BIST
        for bar in stride(from: 0x10, through: 0x24, by: 4) { perm.set(bar, width: 4, virt: allVirt, write: allWrite) }
        perm.set(0x30, width: 4, virt: allVirt, write: allWrite)  // expansion ROM
        perm.set(PCIRegister.capabilityPointer, width: 1, virt: 0xff, write: 0)
        perm.set(0x3c, width: 1, virt: 0xff, write: 0xff)  // interrupt line
        perm.set(0x3d, width: 1, virt: 0xff, write: 0)  // interrupt pin
        return perm
    }()

    /// `init_pci_cap_pm_perm` (VPCI-130, 131).
    static let powerManagement: VFIOPCIPermissions = {
        var perm = VFIOPCIPermissions(size: 8, writer: .powerManagement)
        perm.set(1, width: 1, virt: 0xff, write: 0)
        perm.set(2, width: 2, virt: PCIPowerManagement.pmeSupportMask, write: 0)
        let pme = PCIPowerManagement.pmeEnable | PCIPowerManagement.pmeStatus
        perm.set(4, width: 4, virt: pme, write: ~(pme | PCIPowerManagement.stateMask))
        return perm
    }()

    /// `init_pci_cap_vpd_perm` (VPCI-136).
    static let vpd: VFIOPCIPermissions = {
        var perm = VFIOPCIPermissions(size: 8, writer: .vpd)
        perm.set(1, width: 1, virt: 0xff, write: 0)
        perm.set(2, width: 2, virt: 0xffff, write: 0xffff)
        perm.set(4, width: 4, virt: allVirt, write: allWrite)
        return perm
    }()

    /// `init_pci_cap_pcix_perm` (table row 0x07 of VPCI-130): command and ECC CSR to the device.
    static let pcix: VFIOPCIPermissions = {
        var perm = VFIOPCIPermissions(size: 24)
        perm.set(1, width: 1, virt: 0xff, write: 0)
        perm.set(2, width: 2, virt: 0, write: 0xffff)
        perm.set(8, width: 4, virt: 0, write: allWrite)
        return perm
    }()

    /// `init_pci_cap_exp_perm` (VPCI-134): DEVCTL writable except Phantom Functions, with Initiate
    /// FLR, Max_Payload_Size and Max_Read_Request_Size virtual; DEVCTL2 writable except ARI
    /// Forwarding; nothing else.
    static let express: VFIOPCIPermissions = {
        var perm = VFIOPCIPermissions(size: PCIExpressRegister.endpointSizeV2, writer: .express)
        perm.set(1, width: 1, virt: 0xff, write: 0)
        perm.set(
            PCIExpressRegister.deviceControl, width: 2,
            virt: PCIExpressRegister.initiateFLR | PCIExpressRegister.maxPayloadMask | PCIExpressRegister.maxReadRequestMask,
            write: 0xffff & ~PCIExpressRegister.phantomFunctions)
        perm.set(PCIExpressRegister.deviceControl2, width: 2, virt: 0, write: 0xffff & ~PCIExpressRegister.ariForwarding)
        return perm
    }()

    /// `init_pci_cap_af_perm` (VPCI-135): only AF_CTRL's Initiate FLR, virtual.
    static let advancedFeatures: VFIOPCIPermissions = {
        var perm = VFIOPCIPermissions(size: 6, writer: .advancedFeatures)
        perm.set(1, width: 1, virt: 0xff, write: 0)
        perm.set(PCIAdvancedFeatures.control, width: 1, virt: PCIAdvancedFeatures.controlFLR, write: PCIAdvancedFeatures.controlFLR)
        return perm
    }()

    /// `init_pci_ext_cap_err_perm` (VPCI-141).
    static let aer: VFIOPCIPermissions = {
        var perm = VFIOPCIPermissions(size: 0x2c)
        perm.set(0, width: 4, virt: allVirt, write: 0)
        // Undefined, DLP, Surprise Down, Poisoned TLP, FCP, Completion Timeout, Completer Abort,
        // Unexpected Completion, Receiver Overflow, Malformed TLP, ECRC, Unsupported Request,
        // ACS Violation, Internal, MC Blocked TLP, AtomicOp Egress Blocked, TLP Prefix Blocked.
        let uncorrectable: UInt32 = 0x0000_0001 | 0x10 | 0x20 | 0x1000 | 0x2000 | 0x4000 | 0x8000 | 0x1_0000 | 0x2_0000
            | 0x4_0000 | 0x8_0000 | 0x10_0000 | 0x20_0000 | 0x40_0000 | 0x80_0000 | 0x100_0000 | 0x200_0000
        for register in [0x04, 0x08, 0x0c] { perm.set(register, width: 4, virt: 0, write: uncorrectable) }
        // Receiver Error, Bad TLP, Bad DLLP, REPLAY_NUM Rollover, Replay Timer Timeout, Advisory
        // Non-Fatal, Corrected Internal, Header Log Overflow.
        let correctable: UInt32 = 0x1 | 0x40 | 0x80 | 0x100 | 0x1000 | 0x2000 | 0x4000 | 0x8000
        for register in [0x10, 0x14] { perm.set(register, width: 4, virt: 0, write: correctable) }
        perm.set(0x18, width: 4, virt: 0, write: 0x40 | 0x100)  // ECRC generation and check enable
        return perm
    }()

    /// `init_pci_ext_cap_pwr_perm`: the header virtual and the byte at `PCI_PWR_DATA` (+8)
    /// writable. The source names +8 (the Data register); VPCI-140's table says the Data Select
    /// byte at +4 — the source wins.
    static let powerBudgeting: VFIOPCIPermissions = {
        var perm = VFIOPCIPermissions(size: 0x10)
        perm.set(0, width: 4, virt: allVirt, write: 0)
        perm.set(0x08, width: 1, virt: 0, write: 0xff)
        return perm
    }()

    /// `cap_perms[id]`: the table for a standard capability id (MSI's is per device).
    static func standard(_ id: UInt8) -> VFIOPCIPermissions {
        switch UInt16(id) {
        case PCICapabilityID.basic: basic
        case PCICapabilityID.powerManagement: powerManagement
        case PCICapabilityID.vpd: vpd
        case PCICapabilityID.pcix: pcix
        case PCICapabilityID.vendorSpecific: VFIOPCIPermissions(reader: .direct, writer: .raw)
        case PCICapabilityID.pciExpress: express
        case PCICapabilityID.advancedFeatures: advancedFeatures
        default: VFIOPCIPermissions(reader: .direct)
        }
    }

    /// `ecap_perms[id]`, or `direct_ro_perms` for an id past `PCI_EXT_CAP_ID_MAX` (VPCI-142).
    static func extended(_ id: UInt8) -> VFIOPCIPermissions {
        switch UInt16(id) {
        case PCIExtendedCapabilityID.aer: aer
        case PCIExtendedCapabilityID.powerBudgeting: powerBudgeting
        case PCIExtendedCapabilityID.vendorSpecific, PCIExtendedCapabilityID.designatedVendorSpecific:
            VFIOPCIPermissions(reader: .direct, writer: .raw)
        default: VFIOPCIPermissions(reader: .direct)
        }
    }

    /// `unassigned_perms`: bytes no capability owns are raw, both ways (VPCI-114).
    static let unassigned = VFIOPCIPermissions(reader: .raw, writer: .raw)

    /// `init_pci_cap_msi_perm` for a capability of `length` bytes with Message Control `flags`
    /// (VPCI-132): Message Control's low byte, address and data virtual; mask and pending bits
    /// (per-vector masking) to the device.
    static func msi(length: Int, flags: UInt16) -> VFIOPCIPermissions {
        var perm = VFIOPCIPermissions(size: length, reader: .msi, writer: .msi)
        perm.set(1, width: 1, virt: 0xff, write: 0)
        perm.set(PCIMSIRegister.flags, width: 1, virt: 0xff, write: 0xff)
        perm.set(PCIMSIRegister.addressLow, width: 4, virt: allVirt, write: allWrite)
        if flags & PCIMSIRegister.flags64Bit != 0 {
            perm.set(0x08, width: 4, virt: allVirt, write: allWrite)
            perm.set(0x0c, width: 2, virt: 0xffff, write: 0xffff)
            if flags & PCIMSIRegister.flagsMaskable != 0 {
                perm.set(0x10, width: 4, virt: 0, write: allWrite)
                perm.set(0x14, width: 4, virt: 0, write: allWrite)
            }
        } else {
            perm.set(0x08, width: 2, virt: 0xffff, write: 0xffff)
            if flags & PCIMSIRegister.flagsMaskable != 0 {
                perm.set(0x0c, width: 4, virt: 0, write: allWrite)
                perm.set(0x10, width: 4, virt: 0, write: allWrite)
            }
        }
        return perm
    }
}

// MARK: Register constants (`include/uapi/linux/pci_regs.h`) the tables and handlers use

extension PCICapabilityID {
    /// `PCI_CAP_ID_BASIC`: vfio's fake id for the standard header.
    static let basic: UInt16 = 0x00
    static let agp: UInt16 = 0x02
    static let vpd: UInt16 = 0x03
    static let hyperTransport: UInt16 = 0x08
    static let vendorSpecific: UInt16 = 0x09
    static let sata: UInt16 = 0x12
    /// `PCI_CAP_ID_MAX` (`PCI_CAP_ID_EA`).
    static let max: UInt16 = 0x14
}

extension PCIExtendedCapabilityID {
    static let vc: UInt16 = 0x02
    static let dsn: UInt16 = 0x03
    static let powerBudgeting: UInt16 = 0x04
    static let mfvc: UInt16 = 0x08
    static let vc9: UInt16 = 0x09
    static let vendorSpecific: UInt16 = 0x0b
    static let ari: UInt16 = 0x0e
    static let ats: UInt16 = 0x0f
    static let multicast: UInt16 = 0x12
    static let pri: UInt16 = 0x13
    static let resizableBAR: UInt16 = 0x15
    static let dpa: UInt16 = 0x16
    static let tph: UInt16 = 0x17
    static let ltr: UInt16 = 0x18
    static let designatedVendorSpecific: UInt16 = 0x23
    /// `PCI_EXT_CAP_ID_MAX` (`PCI_EXT_CAP_ID_PL_64GT`) in 7.3.
    static let max: UInt16 = 0x31
}

/// The Power Management capability (`PCI_PM_*`).
enum PCIPowerManagement {
    static let capabilities = 2
    static let control = 4
    static let d1Support: UInt32 = 0x0200
    static let d2Support: UInt32 = 0x0400
    static let pmeSupportMask: UInt32 = 0xf800
    static let stateMask: UInt32 = 0x0003
    static let noSoftReset: UInt32 = 0x0008
    static let pmeEnable: UInt32 = 0x0100
    static let pmeStatus: UInt32 = 0x8000
}

/// The PCI Express capability (`PCI_EXP_*`).
enum PCIExpressRegister {
    static let flags = 0x02
    static let deviceCapabilities = 0x04
    static let deviceControl = 0x08
    static let deviceStatus = 0x0a
    static let linkControl = 0x10
    static let slotControl = 0x18
    static let rootControl = 0x1c
    static let deviceControl2 = 0x28
    static let linkControl2 = 0x30
    static let slotControl2 = 0x38
    /// `PCI_CAP_EXP_ENDPOINT_SIZEOF_V1` / `_V2`.
    static let endpointSizeV1 = 20
    static let endpointSizeV2 = 0x34
    static let flagsVersion: UInt16 = 0x000f
    static let flagsSlot: UInt16 = 0x0100
    static let deviceCapabilitiesFLR: UInt32 = 0x1000_0000
    static let initiateFLR: UInt32 = 0x8000
    static let maxPayloadMask: UInt32 = 0x00e0
    static let maxReadRequestMask: UInt32 = 0x7000
    static let phantomFunctions: UInt32 = 0x0200
    static let ariForwarding: UInt32 = 0x0020
    /// `PCI_EXP_TYPE_RC_END`, `PCI_EXP_TYPE_RC_EC`, `PCI_EXP_TYPE_ROOT_PORT`, `PCI_EXP_TYPE_DOWNSTREAM`, …
    static let typeEndpoint: UInt16 = 0x0
    static let typeLegacyEndpoint: UInt16 = 0x1
    static let typeRootPort: UInt16 = 0x4
    static let typeUpstream: UInt16 = 0x5
    static let typeDownstream: UInt16 = 0x6
    static let typePCIBridge: UInt16 = 0x7
    static let typePCIeBridge: UInt16 = 0x8
    static let typeRootComplexEndpoint: UInt16 = 0x9
    static let typeRootComplexEventCollector: UInt16 = 0xa
}

/// The Advanced Features capability (`PCI_AF_*`).
enum PCIAdvancedFeatures {
    static let capabilities = 3
    static let control = 4
    static let capabilityTP: UInt8 = 0x01
    static let capabilityFLR: UInt8 = 0x02
    static let controlFLR: UInt32 = 0x01
}

/// The MSI capability (`PCI_MSI_*`).
enum PCIMSIRegister {
    static let flags = 2
    static let addressLow = 4
    static let flagsEnable: UInt16 = 0x0001
    static let flagsQueueMask: UInt16 = 0x000e
    static let flagsQueueSize: UInt16 = 0x0070
    static let flags64Bit: UInt16 = 0x0080
    static let flagsMaskable: UInt16 = 0x0100
}

/// The VPD capability (`PCI_VPD_*`).
enum PCIVPDRegister {
    static let address = 2
    static let data = 4
    static let addressFlag: UInt16 = 0x8000
}
