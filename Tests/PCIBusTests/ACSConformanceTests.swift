import KernelRules
import Testing

@testable import PCIBus

/// `pci_acs_enabled` conformance (spec §2.2–2.5): one row per rule, each naming its ID.
@Suite("ACS rules (ACS-01..34)")
struct ACSConformanceTests {
    struct Row: CustomTestStringConvertible, Sendable {
        let rule: String
        let what: String
        let functions: [(String, ConfigSpaceBuilder)]
        let platform: IOMMUPlatformKind
        let policy: ACSEnablePolicy
        let subject: String
        let enabled: Bool
        let decidedBy: String
        var testDescription: String { "\(rule): \(what)" }

        init(
            _ rule: String, _ what: String, _ functions: [(String, ConfigSpaceBuilder)], subject: String, enabled: Bool,
            decidedBy: String? = nil, platform: IOMMUPlatformKind = .intelVTd, policy: ACSEnablePolicy = .bootEnable
        ) {
            self.rule = rule
            self.what = what
            self.functions = functions
            self.subject = subject
            self.enabled = enabled
            self.decidedBy = decidedBy ?? rule
            self.platform = platform
            self.policy = policy
        }
    }

    static let lpcEnabled: ConfigSpaceBuilder = {
        var lpc = ConfigSpaceBuilder(vendor: 0x8086, device: 0x1c44, classCode: 0x060100, multifunction: true, size: 256)
        lpc.write32(0xf0, 0xfed1_c001)
        return lpc
    }()
    static let lpcDisabled: ConfigSpaceBuilder = {
        var lpc = ConfigSpaceBuilder(vendor: 0x8086, device: 0x1c44, classCode: 0x060100, multifunction: true, size: 256)
        lpc.write32(0xf0, 0xfed1_c000)
        return lpc
    }()
    static func sptRootPort(control: UInt32) -> ConfigSpaceBuilder {
        var port = Make.rootPort(device: 0xa110, secondary: 1, acs: nil)
        // Sunrise Point erratum layout: dword CAP at cap+4, dword CTRL at cap+8.
        let offset = port.addExtendedCapability(PCIExtendedCapabilityID.acs, body: [0x1f, 0, 0, 0, 0, 0, 0, 0])
        port.write32(offset + 8, control)
        return port
    }

    static let rows: [Row] = [
        Row("ACS-01", "quirk decides first: Intel 82599 multifunction endpoint (mf_endpoint)",
            [("00:01.0", Make.rootPort(secondary: 1)), ("01:00.0", Make.endpoint(vendor: 0x8086, device: 0x10fb, multifunction: true))],
            subject: "01:00.0", enabled: true),
        Row("ACS-01", "AMD southbridge multifunction function on the root bus with IVRS (amd_sb)",
            [("00:14.4", Make.endpoint(vendor: 0x1022, device: 0x780f, multifunction: true))],
            subject: "00:14.4", enabled: true, platform: .amdVi),
        Row("ACS-31", "amd_sb does not apply without an IVRS table (not AMD-Vi): the standard path decides",
            [("00:14.4", Make.endpoint(vendor: 0x1022, device: 0x780f, multifunction: true))],
            subject: "00:14.4", enabled: false, decidedBy: "ACS-05"),
        Row("ACS-31", "amd_sb does not apply to a function that is not multifunction: the standard path decides",
            [("00:14.0", Make.bridge(nil, vendor: 0x1022, device: 0x780f, secondary: 1))],
            subject: "00:14.0", enabled: false, decidedBy: "ACS-02", platform: .amdVi),
        Row("ACS-31", "amd_sb does not apply to a function not on the root bus: the standard path decides",
            [("00:01.0", Make.rootPort(vendor: 0x1022, device: 0x1412, secondary: 1)),
             ("01:00.0", Make.bridge(nil, vendor: 0x1022, device: 0x780f, primary: 1, secondary: 2, multifunction: true))],
            subject: "01:00.0", enabled: false, decidedBy: "ACS-02", platform: .amdVi),
        Row("ACS-02", "conventional PCI function: never isolated",
            [("00:1e.0", Make.bridge(.pcieToPCIBridge, secondary: 1)), ("01:01.0", Make.endpoint(nil))],
            subject: "01:01.0", enabled: false),
        Row("ACS-03", "PCIe-to-PCI bridge: never isolated",
            [("00:1e.0", Make.bridge(.pcieToPCIBridge, secondary: 1, acs: Make.fullACS))],
            subject: "00:1e.0", enabled: false),
        Row("ACS-04", "root port with ACS SV RR CR UF: isolated",
            [("00:01.0", Make.rootPort(secondary: 1))], subject: "00:01.0", enabled: true),
        Row("ACS-04", "root port without an ACS capability: not isolated",
            [("00:01.0", Make.rootPort(secondary: 1, acs: nil))], subject: "00:01.0", enabled: false),
        Row("ACS-04", "downstream port whose control lacks RR (as dumped): not isolated",
            [("00:01.0", Make.bridge(.downstreamPort, secondary: 1, acs: Make.fullACS, control: [.sourceValidation, .completionRedirect, .upstreamForwarding]))],
            subject: "00:01.0", enabled: false, policy: .asDumped),
        Row("ACS-05", "multifunction endpoint without ACS: not isolated",
            [("00:01.0", Make.rootPort(secondary: 1)), ("01:00.0", Make.endpoint(multifunction: true)), ("01:00.1", Make.endpoint(multifunction: true))],
            subject: "01:00.0", enabled: false),
        Row("ACS-05", "multifunction endpoint with ACS advertising RR CR, enabled",
            [("00:01.0", Make.rootPort(secondary: 1)), ("01:00.0", Make.endpoint(multifunction: true, acs: [.requestRedirect, .completionRedirect]))],
            subject: "01:00.0", enabled: true),
        Row("ACS-06", "single-function endpoint: ACS not applicable, isolated",
            [("00:01.0", Make.rootPort(secondary: 1)), ("01:00.0", Make.endpoint())], subject: "01:00.0", enabled: true),
        Row("ACS-06", "single-function switch upstream port: isolated",
            [("00:01.0", Make.rootPort(secondary: 1, subordinate: 2)), ("01:00.0", Make.bridge(.upstreamPort, primary: 1, secondary: 2))],
            subject: "01:00.0", enabled: true),
        Row("ACS-07", "an ACS capability advertising no features satisfies the request (as dumped)",
            [("00:01.0", Make.rootPort(secondary: 1, acs: []))], subject: "00:01.0", enabled: true, decidedBy: "ACS-04",
            policy: .asDumped),
        Row("ACS-07", "features the capability does not advertise count as enabled (RR-only capability, RR on)",
            [("00:01.0", Make.rootPort(secondary: 1, acs: [.requestRedirect], control: [.requestRedirect]))],
            subject: "00:01.0", enabled: true, decidedBy: "ACS-04", policy: .asDumped),
        Row("ACS-22", "boot-time enable sets SV RR CR UF the capability advertises",
            [("00:01.0", Make.rootPort(secondary: 1, control: []))], subject: "00:01.0", enabled: true, decidedBy: "ACS-04"),
        Row("ACS-22", "as dumped, an advertised but disabled control is not isolated",
            [("00:01.0", Make.rootPort(secondary: 1, control: []))], subject: "00:01.0", enabled: false, decidedBy: "ACS-04",
            policy: .asDumped),
        Row("ACS-20", "IDT switch: broken SV dropped from the cached capability, so SV is not required",
            [("00:01.0", Make.bridge(.downstreamPort, vendor: 0x111d, device: 0x80b5, secondary: 1, acs: Make.fullACS,
                                     control: [.requestRedirect, .completionRedirect, .upstreamForwarding]))],
            subject: "00:01.0", enabled: true, decidedBy: "ACS-04", policy: .asDumped),
        Row("ACS-31", "Intel RCiEP multifunction (rciep quirk): isolated",
            [("00:08.0", Make.endpoint(.rootComplexEndpoint, vendor: 0x8086, device: 0x09a2, multifunction: true))],
            subject: "00:08.0", enabled: true, decidedBy: "ACS-01"),
        Row("ACS-31", "non-Intel multifunction RCiEP without ACS: not isolated",
            [("00:08.0", Make.endpoint(.rootComplexEndpoint, vendor: 0x1b36, device: 0x000b, multifunction: true))],
            subject: "00:08.0", enabled: false, decidedBy: "ACS-05"),
        Row("ACS-34", "Intel PCH root port, LPC RCBA enabled: enable quirk succeeds, isolated",
            [("00:1c.0", Make.rootPort(device: 0x1c10, secondary: 1, acs: nil)), ("00:1f.0", lpcEnabled)],
            subject: "00:1c.0", enabled: true, decidedBy: "ACS-01"),
        Row("ACS-34", "Intel PCH root port, LPC RCBA disabled: enable quirk fails, not isolated",
            [("00:1c.0", Make.rootPort(device: 0x1c10, secondary: 1, acs: nil)), ("00:1f.0", lpcDisabled)],
            subject: "00:1c.0", enabled: false, decidedBy: "ACS-01"),
        Row("ACS-33", "Intel PCH root port as dumped: the quirk flag is never set, not isolated",
            [("00:1c.0", Make.rootPort(device: 0x1c10, secondary: 1, acs: nil)), ("00:1f.0", lpcEnabled)],
            subject: "00:1c.0", enabled: false, decidedBy: "ACS-01", policy: .asDumped),
        Row("ACS-33", "Sunrise Point root port: dword control at cap+8 enabled at boot",
            [("00:1c.0", sptRootPort(control: 0))], subject: "00:1c.0", enabled: true, decidedBy: "ACS-01"),
        Row("ACS-33", "Sunrise Point root port as dumped with an empty dword control: not isolated",
            [("00:1c.0", sptRootPort(control: 0))], subject: "00:1c.0", enabled: false, decidedBy: "ACS-01",
            policy: .asDumped),
        Row("ACS-33", "Sunrise Point root port as dumped with SV RR CR UF in the dword control: isolated",
            [("00:1c.0", sptRootPort(control: 0x1d))], subject: "00:1c.0", enabled: true, decidedBy: "ACS-01",
            policy: .asDumped),
        Row("ACS-31", "unlisted Zhaoxin downstream port: its full ACS capability is overridden",
            [("00:01.0", Make.bridge(.downstreamPort, vendor: 0x1d17, device: 0x0800, secondary: 1, acs: Make.fullACS, control: Make.fullACS))],
            subject: "00:01.0", enabled: false, decidedBy: "ACS-01"),
        Row("ACS-31", "listed Zhaoxin root port without ACS: isolated by the quirk",
            [("00:01.0", Make.rootPort(vendor: 0x1d17, device: 0x0715, secondary: 1, acs: nil))],
            subject: "00:01.0", enabled: true, decidedBy: "ACS-01"),
        Row("ACS-31", "unlisted Wangxun device: not isolated",
            [("00:01.0", Make.rootPort(secondary: 1)), ("01:00.0", Make.endpoint(vendor: 0x8088, device: 0x9999))],
            subject: "01:00.0", enabled: false, decidedBy: "ACS-01"),
        Row("ACS-32", "Qualcomm QDF2xxx root port without ACS: isolated by qcom_rp",
            [("00:00.0", Make.rootPort(vendor: 0x17cb, device: 0x0400, secondary: 1, acs: nil))],
            subject: "00:00.0", enabled: true, decidedBy: "ACS-01"),
        Row("ACS-32", "Cavium ThunderX root port in the quirk range without ACS: isolated",
            [("00:00.0", Make.rootPort(vendor: 0x177d, device: 0xa100, secondary: 1, acs: nil))],
            subject: "00:00.0", enabled: true, decidedBy: "ACS-01"),
    ]

    /// ACS-21: `pci_enable_acs` runs only when an IOMMU driver called `pci_request_acs()` (the
    /// `boot` policy), tries the device-specific enable quirk first (Intel PCH, Sunrise Point) and
    /// runs `pci_std_enable_acs` only when no quirk applies. Not modelled: the kernel parameters
    /// `disable_acs_redir=` and `config_acs=` that ACS-21 applies afterwards (a simulated machine
    /// has no kernel command line); these rows check the modelled part, which enable runs and what
    /// it writes.
    struct EnableRow: CustomTestStringConvertible, Sendable {
        let rule: String
        let what: String
        let functions: [(String, ConfigSpaceBuilder)]
        let policy: ACSEnablePolicy
        /// The standard control word (cap+6) and the Sunrise Point dword control (cap+8) afterwards.
        let control: ACSFlags
        let sptControl: ACSFlags
        let pchQuirkEnabled: Bool
        var testDescription: String { "\(rule): \(what)" }
    }

    static let allBits: ACSFlags = [
        .sourceValidation, .translationBlocking, .requestRedirect, .completionRedirect, .upstreamForwarding,
        .egressControl, .directTranslated,
    ]

    static let enableRows: [EnableRow] = [
        EnableRow(rule: "ACS-21", what: "no IOMMU asked for ACS (as dumped): pci_enable_acs does not run",
                  functions: [("00:01.0", Make.rootPort(secondary: 1, control: []))], policy: .asDumped,
                  control: [], sptControl: [], pchQuirkEnabled: false),
        EnableRow(rule: "ACS-21", what: "IOMMU on, no enable quirk applies: pci_std_enable_acs sets the advertised SV RR CR UF",
                  functions: [("00:01.0", Make.rootPort(secondary: 1, control: []))], policy: .bootEnable,
                  control: Make.fullACS, sptControl: [], pchQuirkEnabled: false),
        EnableRow(rule: "ACS-21", what: "IOMMU on, the Intel PCH enable quirk applies: the standard enable does not run",
                  functions: [("00:1c.0", Make.rootPort(device: 0x1c10, secondary: 1, control: [])), ("00:1f.0", lpcEnabled)],
                  policy: .bootEnable, control: [], sptControl: [], pchQuirkEnabled: true),
        EnableRow(rule: "ACS-21", what: "IOMMU on, the Sunrise Point enable quirk writes the dword control at cap+8, not the word at cap+6",
                  functions: [("00:1c.0", sptRootPort(control: 0))], policy: .bootEnable,
                  control: [], sptControl: Make.fullACS, pchQuirkEnabled: false),
        EnableRow(rule: "ACS-22", what: "EC, DT and TB are never enabled by default, even when advertised",
                  functions: [("00:01.0", Make.rootPort(secondary: 1, acs: allBits, control: []))], policy: .bootEnable,
                  control: Make.fullACS, sptControl: [], pchQuirkEnabled: false),
    ]

    @Test(arguments: enableRows)
    func enable(_ row: EnableRow) {
        let topology = Make.topology(row.functions)
        let subject = topology.functions[topology.index(of: PCIAddress(parsing: row.functions[0].0)!)!]
        let effective = EffectiveACS(function: subject, topology: topology, policy: row.policy)
        #expect(effective.control == row.control, "\(row.rule): \(effective.enableNote ?? "no enable")")
        #expect(effective.sptControl.intersection(Make.fullACS) == row.sptControl)
        #expect(effective.pchQuirkEnabled == row.pchQuirkEnabled)
    }

    @Test(arguments: rows)
    func verdict(_ row: Row) {
        let grouping = Make.grouping(row.functions, platform: row.platform, acs: row.policy)
        let verdict = grouping.acsVerdict(for: PCIAddress(parsing: row.subject)!)!
        #expect(verdict.enabled == row.enabled, "\(row.rule): \(verdict.detail)")
        #expect(verdict.rule.id == row.decidedBy, "\(row.rule): decided by \(verdict.rule): \(verdict.detail)")
    }

    @Test("ACS-10: the path check fails at the first bridge without ACS, up to the root bus")
    func pathEnabled() {
        let grouping = Make.grouping([
            ("00:01.0", Make.rootPort(secondary: 1, subordinate: 3, acs: nil)),
            ("01:00.0", Make.bridge(.upstreamPort, primary: 1, secondary: 2, subordinate: 3)),
            ("02:00.0", Make.bridge(.downstreamPort, primary: 2, secondary: 3, acs: Make.fullACS)),
            ("03:00.0", Make.endpoint()),
        ])
        let path = grouping.upstreamPath(of: PCIAddress(parsing: "03:00.0")!)
        #expect(path.map(\.bridge.shortDescription) == ["02:00.0", "01:00.0", "00:01.0"])
        #expect(path.map(\.verdict.enabled) == [true, true, false])
        #expect(grouping.membership(of: PCIAddress(parsing: "03:00.0")!)!.details.contains { $0.contains("00:01.0") })
    }

    @Test("ACS-30: every quirk-table entry names a quirk function and the table keeps kernel order")
    func quirkTableOrder() {
        let quirks = ACSQuirkTable.entries.map(\.quirk)
        #expect(quirks.first == .amdSouthbridge)
        #expect(quirks.last == .wangxunNIC)
        let intelPCH = quirks.firstIndex(of: .intelPCH)!
        #expect(quirks.firstIndex(of: .rootComplexEndpoint)! < intelPCH)
        #expect(intelPCH < quirks.firstIndex(of: .intelSPTPCH)!)
    }
}
