/// The ACS quirk table `pci_dev_acs_enabled[]` of `drivers/pci/quirks.c` (ACS-30..33), as data.
///
/// Each entry names a vendor, a device (nil = `PCI_ANY_ID`) and the quirk function; entries are
/// tried in table order and the first that applies decides (ACS-30).
enum ACSQuirk: String, Sendable {
    case amdSouthbridge = "pci_quirk_amd_sb_acs"
    case multifunctionEndpoint = "pci_quirk_mf_endpoint_acs"
    case rootComplexEndpoint = "pci_quirk_rciep_acs"
    case intelPCH = "pci_quirk_intel_pch_acs"
    case intelSPTPCH = "pci_quirk_intel_spt_pch_acs"
    case qualcommRootPort = "pci_quirk_qcom_rp_acs"
    case nxpRootPort = "pci_quirk_nxp_rp_acs"
    case annapurnaLabs = "pci_quirk_al_acs"
    case cavium = "pci_quirk_cavium_acs"
    case xgene = "pci_quirk_xgene_acs"
    case broadcom = "pci_quirk_brcm_acs"
    case loongson = "pci_quirk_loongson_acs"
    case zhaoxinPorts = "pci_quirk_zhaoxin_pcie_ports_acs"
    case wangxunNIC = "pci_quirk_wangxun_nic_acs"
}

struct ACSQuirkEntry: Sendable {
    let vendor: UInt16
    let device: UInt16?
    let quirk: ACSQuirk
}

enum ACSQuirkTable {
    static let entries: [ACSQuirkEntry] = {
        var table: [ACSQuirkEntry] = []
        func add(_ vendor: UInt16, _ devices: [UInt16?], _ quirk: ACSQuirk) {
            table += devices.map { ACSQuirkEntry(vendor: vendor, device: $0, quirk: quirk) }
        }
        add(0x1002, [0x4385, 0x439c, 0x4383, 0x439d, 0x4384, 0x4399], .amdSouthbridge)
        add(0x1022, [0x780f, 0x7809], .amdSouthbridge)
        add(0x1924, [0x0903, 0x0923, 0x0a03], .multifunctionEndpoint)  // Solarflare
        add(
            0x8086,
            [
                0x10c6, 0x10db, 0x10dd, 0x10e1, 0x10f1, 0x10f7, 0x10f8, 0x10f9, 0x10fa, 0x10fb, 0x10fc, 0x1507,
                0x1514, 0x151c, 0x1529, 0x152a, 0x154d, 0x154f, 0x1551, 0x1558,
                0x1509, 0x150e, 0x150f, 0x1510, 0x1511, 0x1516, 0x1527,  // 82580
                0x10c9, 0x10e6, 0x10e7, 0x10e8, 0x150a, 0x150d, 0x1518, 0x1526,  // 82576
                0x10a7, 0x10a9, 0x10d6,  // 82575
                0x1521, 0x1522, 0x1523, 0x1524,  // I350
                0x105e, 0x105f, 0x1060, 0x10d9,  // 82571
                0x15b7, 0x15b8,  // I219
            ], .multifunctionEndpoint)
        add(0x8086, [nil], .rootComplexEndpoint)
        add(0x17cb, [0x0400, 0x0401, 0x0115, 0x0111, 0x0120], .qualcommRootPort)  // QCOM
        add(0x1dbf, [0x0401], .qualcommRootPort)  // HXT SD4800
        add(0x8086, [nil], .intelPCH)
        add(0x8086, [nil], .intelSPTPCH)
        add(0x19a2, [0x0710], .multifunctionEndpoint)  // Emulex BE3-R
        add(0x10df, [0x0720], .multifunctionEndpoint)  // Emulex Skyhawk-R
        add(0x177d, [nil], .cavium)
        add(0x177d, [0xa026, 0xa059, 0xa060], .multifunctionEndpoint)
        add(0x10e8, [0xe004], .xgene)  // APM X-Gene
        add(0x1def, Array(0xe005...0xe00c).map { Optional($0) }, .xgene)  // Ampere
        add(0x14e4, [0x16d7, 0x1750, 0x1751, 0x1752, 0x1760, 0x1761, 0x1762, 0x1763], .multifunctionEndpoint)
        add(0x14e4, [0xd714], .broadcom)
        add(0x0014, [0x3c09, 0x3c19, 0x3c29, 0x7a09, 0x7a19, 0x7a29, 0x7a39, 0x7a49, 0x7a59, 0x7a69], .loongson)
        add(0x1c36, [0x0031], .annapurnaLabs)  // PCI_VENDOR_ID_AMAZON_ANNAPURNA_LABS
        add(0x1d17, [0x3038, 0x3104, 0x9083], .multifunctionEndpoint)  // Zhaoxin
        add(
            0x1957,
            [
                0x8d81, 0x8da1, 0x8d83, 0x8d80, 0x8da0, 0x8d82, 0x8d90, 0x8db0, 0x8d92, 0x8d91, 0x8db1, 0x8d93,
                0x8d89, 0x8da9, 0x8d8b, 0x8d88, 0x8da8, 0x8d8a, 0x8d98, 0x8db8, 0x8d9a, 0x8d99, 0x8db9, 0x8d9b,
            ], .nxpRootPort)
        add(0x1d17, [nil], .zhaoxinPorts)
        add(0x8088, [nil], .wangxunNIC)
        return table
    }()

    /// `pci_quirk_intel_pch_acs_ids[]` (ACS-33): PCH root ports whose ACS is provided by the
    /// enable quirk rather than a capability.
    static func isIntelPCHRootPort(_ device: UInt16) -> Bool {
        let ranges: [ClosedRange<UInt16>] = [
            0x3b42...0x3b51, 0x1c10...0x1c1f, 0x1e10...0x1e1f, 0x8c10...0x8c1f, 0x9c10...0x9c1b, 0x9c90...0x9c9b,
            0x8d10...0x8d1e,
        ]
        let single: Set<UInt16> = [
            0x1d10, 0x1d12, 0x1d14, 0x1d16, 0x1d18, 0x1d1a, 0x1d1c, 0x1d1e,
            0x8c90, 0x8c92, 0x8c94, 0x8c96, 0x8c98, 0x8c9a, 0x8c9c, 0x8c9e,
        ]
        return single.contains(device) || ranges.contains { $0.contains(device) }
    }

    /// `pci_quirk_intel_spt_pch_acs_match` (ACS-33): Sunrise/Union Point and mobile root ports
    /// whose ACS registers are dwords with control at cap + 8.
    static func isIntelSPTRootPort(_ device: UInt16) -> Bool {
        [0xa110...0xa11f, 0xa167...0xa16a, 0xa290...0xa29f, 0xa2e7...0xa2ee, 0x9d10...0x9d1b].contains {
            $0.contains(device)
        }
    }

    /// `pci_quirk_cavium_acs_match`.
    static func isCaviumRootPort(_ device: UInt16) -> Bool {
        (0xa000...0xa7ff).contains(device) || device == 0xaf84 || device == 0xb884
    }

    /// Zhaoxin root/downstream ports the quirk vouches for; any other Zhaoxin port is refused.
    static func isIsolatedZhaoxinPort(_ device: UInt16) -> Bool {
        (0x0710...0x071e).contains(device) || device == 0x0721 || (0x0723...0x0752).contains(device)
    }

    /// Wangxun NICs the quirk vouches for; any other Wangxun function is refused.
    static func isIsolatedWangxunNIC(_ device: UInt16) -> Bool {
        (0x0100...0x010f).contains(device) || [0x1001, 0x2001, 0x5010, 0x5025, 0x5040, 0x5110, 0x5125, 0x5140].contains(device)
    }

    /// IDT switches whose ACS Source Validation is broken (`pci_disable_broken_acs_cap`, ACS-20).
    static func hasBrokenSourceValidation(_ function: PCIFunction) -> Bool {
        function.vendorID == 0x111d && (function.deviceID == 0x80b5 || function.deviceID == 0x8090)
    }
}
