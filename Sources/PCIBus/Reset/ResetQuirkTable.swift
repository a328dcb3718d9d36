/// The reset-related `dev_flags` that header and early quirks of `drivers/pci/quirks.c` set:
/// `PCI_DEV_FLAGS_NO_BUS_RESET`, `PCI_DEV_FLAGS_NO_FLR_RESET`, `PCI_DEV_FLAGS_NO_PM_RESET`.
public struct ResetQuirkFlags: OptionSet, Sendable, Hashable {
    public let rawValue: UInt8
    public init(rawValue: UInt8) { self.rawValue = rawValue }

    /// `PCI_DEV_FLAGS_NO_BUS_RESET`: `pci_parent_bus_reset` refuses the function.
    public static let noBusReset = ResetQuirkFlags(rawValue: 1 << 0)
    /// `PCI_DEV_FLAGS_NO_FLR_RESET`: `pcie_reset_flr` and `pci_af_flr` refuse the function.
    public static let noFLR = ResetQuirkFlags(rawValue: 1 << 1)
    /// `PCI_DEV_FLAGS_NO_PM_RESET`: `pci_pm_reset` refuses the function.
    public static let noPMReset = ResetQuirkFlags(rawValue: 1 << 2)
}

/// The quirk entries that set those flags, as data: `quirk_no_bus_reset`,
/// `quirk_nvidia_no_bus_reset`, `quirk_no_flr`, `quirk_no_flr_snet` and `quirk_no_pm_reset`, as
/// declared in `drivers/pci/quirks.c` of v6.6, plus the later mainline additions NVIDIA GB10 root
/// ports (no bus reset, commit c81a2ce6b6a8) and MediaTek MT7922 (no FLR, commit 70197d3ec778).
public enum ResetQuirkTable {
    struct Entry: Sendable {
        let vendor: UInt16
        /// nil = `PCI_ANY_ID`.
        let device: UInt16?
        /// The flag the quirk sets and the quirk's name.
        let flag: ResetQuirkFlags
        let quirk: String
        /// The quirk's own condition beyond the IDs, if any.
        let condition: Condition

        enum Condition: Sendable {
            case always
            /// `quirk_nvidia_no_bus_reset`: `(device & 0xffc0) == 0x2340`.
            case deviceMasked(mask: UInt16, value: UInt16)
            /// `quirk_no_flr_snet`: only this revision.
            case revision(UInt8)
            /// `DECLARE_PCI_FIXUP_CLASS_HEADER(..., class, 8, quirk_no_pm_reset)`: class and
            /// subclass match, and (the quirk's own test) the function is not on a root bus.
            case classNotOnRootBus(UInt16)
        }
    }

    static let entries: [Entry] = {
        var table: [Entry] = []
        func add(_ vendor: UInt16, _ devices: [UInt16?], _ flag: ResetQuirkFlags, _ quirk: String, _ condition: Entry.Condition = .always) {
            table += devices.map { Entry(vendor: vendor, device: $0, flag: flag, quirk: quirk, condition: condition) }
        }
        add(0x10de, [nil], .noBusReset, "quirk_nvidia_no_bus_reset", .deviceMasked(mask: 0xffc0, value: 0x2340))  // NVIDIA
        add(0x10de, [0x22ce, 0x22d0], .noBusReset, "quirk_no_bus_reset")  // NVIDIA GB10 root ports
        add(0x168c, [0x0030, 0x0032, 0x003c, 0x0033, 0x0034, 0x003e], .noBusReset, "quirk_no_bus_reset")  // Atheros
        add(0x177d, [0xa100], .noBusReset, "quirk_no_bus_reset")  // Cavium ThunderX
        add(0x104c, [0xb005], .noBusReset, "quirk_no_bus_reset")  // TI KeyStone
        add(0x1002, [nil], .noPMReset, "quirk_no_pm_reset", .classNotOnRootBus(0x0300))  // ATI VGA
        add(0x1022, [0x1487, 0x148c, 0x149c, 0x7901], .noFLR, "quirk_no_flr")  // AMD Starship/Matisse, FCH AHCI
        add(0x8086, [0x1502, 0x1503], .noFLR, "quirk_no_flr")  // Intel 82579LM/V
        add(0x14c3, [0x0616], .noFLR, "quirk_no_flr")  // MediaTek MT7922
        add(0xd063, [0x1000], .noFLR, "quirk_no_flr_snet", .revision(0x01))  // SolidRun SNET DPU
        return table
    }()

    /// The flags every matching entry sets, and the quirks that set them.
    static func flags(for function: PCIFunction, onRootBus: Bool) -> (flags: ResetQuirkFlags, quirks: [String]) {
        flags(vendor: function.vendorID, device: function.deviceID, revision: function.revision, classID: function.classID, onRootBus: onRootBus)
    }

    /// The same from the IDs a function's config space reports (the PCI core's `pci_fixup_device`
    /// matching on `pci_dev` fields read at enumeration): what the VFIO layer checks a device
    /// model against.
    public static func flags(vendor: UInt16, device: UInt16, revision: UInt8, classID: UInt16, onRootBus: Bool) -> (
        flags: ResetQuirkFlags, quirks: [String]
    ) {
        var flags: ResetQuirkFlags = []
        var quirks: [String] = []
        for entry in entries
        where entry.vendor == vendor && (entry.device == nil || entry.device == device) {
            let applies: Bool
            switch entry.condition {
            case .always: applies = true
            case .deviceMasked(let mask, let value): applies = device & mask == value
            case .revision(let wanted): applies = revision == wanted
            case .classNotOnRootBus(let wanted): applies = classID == wanted && !onRootBus
            }
            guard applies else { continue }
            flags.insert(entry.flag)
            quirks.append(entry.quirk)
        }
        return (flags, quirks)
    }
}
