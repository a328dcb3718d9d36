import KernelRules
import Testing

@testable import PCIBus

/// `pci_device_group` conformance (spec §1.2, §2.6, §2.7): each row is a small machine, the
/// groups the kernel forms on it, and the rule that placed the function under test.
@Suite("Group formation (IG-10..16, ALIAS-01..04, EX-01..06)")
struct GroupingConformanceTests {
    struct Row: CustomTestStringConvertible, Sendable {
        let rule: String
        let what: String
        let functions: [(String, ConfigSpaceBuilder)]
        let groups: [[String]]
        let subject: String?
        let subjectRule: String?
        let platform: IOMMUPlatformKind
        let acs: ACSEnablePolicy
        var testDescription: String { "\(rule): \(what)" }

        init(
            _ rule: String, _ what: String, _ functions: [(String, ConfigSpaceBuilder)], groups: [[String]],
            subject: String? = nil, placedBy: String? = nil, platform: IOMMUPlatformKind = .intelVTd,
            acs: ACSEnablePolicy = .bootEnable
        ) {
            self.acs = acs
            self.rule = rule
            self.what = what
            self.functions = functions
            self.groups = groups
            self.subject = subject
            self.subjectRule = placedBy
            self.platform = platform
        }
    }

    static let acs = Make.fullACS

    static let rows: [Row] = [
        Row("IG-02", "IDs are the lowest free, handed out bus by bus in devfn order, then the buses below",
            [("00:00.0", Make.hostBridge()), ("00:02.0", Make.rootPort(secondary: 2)), ("00:01.0", Make.rootPort(secondary: 1)),
             ("01:00.0", Make.endpoint()), ("02:00.0", Make.endpoint())],
            groups: [["00:00.0"], ["00:01.0"], ["00:02.0"], ["01:00.0"], ["02:00.0"]]),
        Row("EX-01", "root port with ACS and a single-function endpoint: each alone",
            [("00:01.0", Make.rootPort(secondary: 1)), ("01:00.0", Make.endpoint())],
            groups: [["00:01.0"], ["01:00.0"]], subject: "01:00.0", placedBy: "IG-14"),
        Row("EX-02", "switch: the endpoint below the downstream port without ACS shares the port's group",
            [("00:01.0", Make.rootPort(secondary: 1, subordinate: 4)),
             ("01:00.0", Make.bridge(.upstreamPort, primary: 1, secondary: 2, subordinate: 4)),
             ("02:00.0", Make.bridge(.downstreamPort, primary: 2, secondary: 3, acs: acs)),
             ("02:01.0", Make.bridge(.downstreamPort, primary: 2, secondary: 4)),
             ("03:00.0", Make.endpoint()), ("04:00.0", Make.endpoint())],
            groups: [["00:01.0"], ["01:00.0"], ["02:00.0"], ["02:01.0", "04:00.0"], ["03:00.0"]],
            subject: "04:00.0", placedBy: "IG-11"),
        Row("EX-03", "root port without ACS: everything below joins the root port's group",
            [("00:01.0", Make.rootPort(secondary: 1, subordinate: 3, acs: nil)),
             ("01:00.0", Make.bridge(.upstreamPort, primary: 1, secondary: 2, subordinate: 3)),
             ("02:00.0", Make.bridge(.downstreamPort, primary: 2, secondary: 3, acs: acs)), ("03:00.0", Make.endpoint())],
            groups: [["00:01.0", "01:00.0", "02:00.0", "03:00.0"]], subject: "03:00.0", placedBy: "IG-11"),
        Row("IG-16", "the endpoint's own ACS is never consulted for the upstream walk",
            [("00:01.0", Make.rootPort(secondary: 1, acs: nil)), ("01:00.0", Make.endpoint(acs: acs, control: acs))],
            groups: [["00:01.0", "01:00.0"]], subject: "01:00.0", placedBy: "IG-11"),
        Row("EX-04", "multifunction endpoint without ACS: functions share a group (IG-13)",
            [("00:01.0", Make.rootPort(secondary: 1)), ("01:00.0", Make.endpoint(multifunction: true)),
             ("01:00.1", Make.endpoint(multifunction: true))],
            groups: [["00:01.0"], ["01:00.0", "01:00.1"]], subject: "01:00.1", placedBy: "IG-13"),
        Row("EX-04", "multifunction endpoint with ACS RR CR: each function alone",
            [("00:01.0", Make.rootPort(secondary: 1)),
             ("01:00.0", Make.endpoint(multifunction: true, acs: [.requestRedirect, .completionRedirect])),
             ("01:00.1", Make.endpoint(multifunction: true, acs: [.requestRedirect, .completionRedirect]))],
            groups: [["00:01.0"], ["01:00.0"], ["01:00.1"]], subject: "01:00.1", placedBy: "IG-14"),
        Row("IG-13", "a function with ACS is not pulled into siblings without it",
            [("00:01.0", Make.rootPort(secondary: 1)), ("01:00.0", Make.endpoint(multifunction: true)),
             ("01:00.1", Make.endpoint(multifunction: true, acs: acs)), ("01:00.2", Make.endpoint(multifunction: true))],
            groups: [["00:01.0"], ["01:00.0", "01:00.2"], ["01:00.1"]], subject: "01:00.2", placedBy: "IG-13"),
        Row("IG-13", "functions > 0 are multifunction even with header bit 7 clear (pci_scan_slot)",
            [("00:01.0", Make.rootPort(secondary: 1)), ("01:00.0", Make.endpoint(multifunction: true)), ("01:00.3", Make.endpoint())],
            groups: [["00:01.0"], ["01:00.0", "01:00.3"]]),
        Row("EX-05", "PCIe-to-PCI bridge: conventional devices alias to the bridge (IG-10, ALIAS-03)",
            [("00:01.0", Make.rootPort(secondary: 1, subordinate: 2)),
             ("01:00.0", Make.bridge(.pcieToPCIBridge, primary: 1, secondary: 2)),
             ("02:01.0", Make.endpoint(nil)), ("02:02.0", Make.endpoint(nil))],
            groups: [["00:01.0"], ["01:00.0", "02:01.0", "02:02.0"]], subject: "02:02.0", placedBy: "IG-10"),
        Row("ALIAS-01", "a conventional bridge behind a PCIe-to-PCI bridge: its devices alias to the outermost one it reaches first",
            [("00:01.0", Make.rootPort(secondary: 1, subordinate: 3)),
             ("01:00.0", Make.bridge(.pcieToPCIBridge, primary: 1, secondary: 2, subordinate: 3)),
             ("02:03.0", Make.bridge(nil, primary: 2, secondary: 3)), ("03:00.0", Make.endpoint(nil))],
            groups: [["00:01.0"], ["01:00.0", "02:03.0", "03:00.0"]], subject: "03:00.0", placedBy: "IG-10"),
        Row("ALIAS-04", "ASPEED PCIe-to-PCI bridge with NO_ALIAS: the child joins through the ACS walk instead (ACS-03)",
            [("00:01.0", Make.rootPort(secondary: 1, subordinate: 2)),
             ("01:00.0", Make.bridge(.pcieToPCIBridge, vendor: 0x1a03, device: 0x1150, primary: 1, secondary: 2)),
             ("02:00.0", Make.endpoint(nil, vendor: 0x1a03, device: 0x2000, classCode: 0x030000))],
            groups: [["00:01.0"], ["01:00.0", "02:00.0"]], subject: "02:00.0", placedBy: "IG-11"),
        Row("ALIAS-04", "Marvell function-1 DMA alias: function 1 joins function 0 even though both have ACS (IG-12)",
            [("00:01.0", Make.rootPort(secondary: 1)),
             ("01:00.0", Make.endpoint(vendor: 0x1b4b, device: 0x9230, classCode: 0x010601, multifunction: true, acs: acs)),
             ("01:00.1", Make.endpoint(vendor: 0x1b4b, device: 0x9230, classCode: 0x010185, multifunction: true, acs: acs))],
            groups: [["00:01.0"], ["01:00.0", "01:00.1"]], subject: "01:00.1", placedBy: "IG-12"),
        Row("ALIAS-04", "Ricoh function-0 DMA alias (IG-12)",
            [("00:01.0", Make.rootPort(secondary: 1)),
             ("01:00.0", Make.endpoint(vendor: 0x1180, device: 0xe822, classCode: 0x080500, multifunction: true, acs: acs)),
             ("01:00.3", Make.endpoint(vendor: 0x1180, device: 0xe832, classCode: 0x0c0010, multifunction: true, acs: acs))],
            groups: [["00:01.0"], ["01:00.0", "01:00.3"]], subject: "01:00.3", placedBy: "IG-12"),
        Row("ALIAS-04", "Intel MIC x200 (quirk_mic_x200_dma_alias): 10.0, 11.0 and 12.3 join 00.0's group; 13.0 does not (IG-12)",
            [("00:01.0", Make.rootPort(secondary: 1)), ("01:00.0", Make.endpoint(vendor: 0x8086, device: 0x2260)),
             ("01:10.0", Make.endpoint()), ("01:11.0", Make.endpoint()), ("01:12.3", Make.endpoint()), ("01:13.0", Make.endpoint())],
            groups: [["00:01.0"], ["01:00.0", "01:10.0", "01:11.0", "01:12.3"], ["01:13.0"]], subject: "01:12.3",
            placedBy: "IG-12"),
        Row("ACS-23", "IOMMU on: a root port advertising SV RR CR UF with control 0 is enabled at boot, so IG-11 isolates its endpoint",
            [("00:01.0", Make.rootPort(secondary: 1, control: [])), ("01:00.0", Make.endpoint())],
            groups: [["00:01.0"], ["01:00.0"]], subject: "01:00.0", placedBy: "IG-14"),
        Row("ACS-23", "the same root port judged as dumped (no boot-time enable): the endpoint joins it",
            [("00:01.0", Make.rootPort(secondary: 1, control: [])), ("01:00.0", Make.endpoint())],
            groups: [["00:01.0", "01:00.0"]], subject: "01:00.0", placedBy: "IG-11", acs: .asDumped),
        Row("ACS-23", "IOMMU on: a switch downstream port with ACS control 0 is enabled at boot, so its endpoint is alone",
            [("00:01.0", Make.rootPort(secondary: 1, subordinate: 3)),
             ("01:00.0", Make.bridge(.upstreamPort, primary: 1, secondary: 2, subordinate: 3)),
             ("02:00.0", Make.bridge(.downstreamPort, primary: 2, secondary: 3, acs: acs, control: [])), ("03:00.0", Make.endpoint())],
            groups: [["00:01.0"], ["01:00.0"], ["02:00.0"], ["03:00.0"]], subject: "03:00.0", placedBy: "IG-14"),
        Row("ALIAS-04", "Intel PEX VCA aliases every slot's functions 0-4 on its bus (IG-12)",
            [("00:01.0", Make.rootPort(secondary: 1)), ("01:00.0", Make.endpoint(vendor: 0x8086, device: 0x2954)),
             ("01:05.0", Make.endpoint())],
            groups: [["00:01.0"], ["01:00.0", "01:05.0"]], subject: "01:05.0", placedBy: "IG-12"),
        Row("ALIAS-04", "Broadcom translation root: the alias walk stops there, the ACS walk groups instead",
            [("00:01.0", Make.bridge(nil, vendor: 0x14e4, device: 0x9000, secondary: 1)), ("01:00.0", Make.endpoint(nil))],
            groups: [["00:01.0", "01:00.0"]], subject: "01:00.0", placedBy: "IG-11"),
        Row("ALIAS-01", "a conventional bridge without the quirk presents its own requester ID (IG-10)",
            [("00:01.0", Make.bridge(nil, vendor: 0x8086, device: 0x1111, secondary: 1)), ("01:00.0", Make.endpoint(nil))],
            groups: [["00:01.0", "01:00.0"]], subject: "01:00.0", placedBy: "IG-10"),
        Row("IG-15", "single-function RCiEPs on the root bus: each alone (EX-06)",
            [("00:08.0", Make.endpoint(.rootComplexEndpoint, vendor: 0x1b36)), ("00:09.0", Make.endpoint(.rootComplexEndpoint, vendor: 0x1b36))],
            groups: [["00:08.0"], ["00:09.0"]], subject: "00:09.0", placedBy: "IG-14"),
        Row("EX-06", "non-Intel multifunction RCiEP without ACS: grouped; Intel one: isolated by the rciep quirk",
            [("00:08.0", Make.endpoint(.rootComplexEndpoint, vendor: 0x1b36, multifunction: true)),
             ("00:08.1", Make.endpoint(.rootComplexEndpoint, vendor: 0x1b36, multifunction: true)),
             ("00:0a.0", Make.endpoint(.rootComplexEndpoint, vendor: 0x8086, device: 0x09a2, multifunction: true)),
             ("00:0a.1", Make.endpoint(.rootComplexEndpoint, vendor: 0x8086, device: 0x09a2, multifunction: true))],
            groups: [["00:08.0", "00:08.1"], ["00:0a.0"], ["00:0a.1"]]),
        Row("IG-13", "multifunction root ports without ACS share a group, and so does everything below them",
            [("00:1c.0", Make.rootPort(secondary: 1, acs: nil, multifunction: true)),
             ("00:1c.1", Make.rootPort(secondary: 2, acs: nil, multifunction: true)),
             ("01:00.0", Make.endpoint()), ("02:00.0", Make.endpoint())],
            groups: [["00:1c.0", "00:1c.1", "01:00.0", "02:00.0"]], subject: "00:1c.1", placedBy: "IG-13"),
        Row("ACS-31", "AMD southbridge: 780f isolated, the FCH siblings without ACS grouped; host bridge and IOMMU ungrouped",
            [("00:00.0", Make.hostBridge(vendor: 0x1022, device: 0x1410)),
             ("00:00.2", ConfigSpaceBuilder(vendor: 0x1022, device: 0x1419, classCode: 0x080600, size: 256)),
             ("00:14.0", Make.endpoint(nil, vendor: 0x1022, device: 0x780b, multifunction: true)),
             ("00:14.3", Make.endpoint(nil, vendor: 0x1022, device: 0x780e, multifunction: true)),
             ("00:14.4", Make.bridge(nil, vendor: 0x1022, device: 0x780f, secondary: 1, multifunction: true)),
             ("01:05.0", Make.endpoint(nil))],
            groups: [["00:14.0", "00:14.3"], ["00:14.4", "01:05.0"]], subject: "00:14.4", placedBy: "IG-14",
            platform: .amdVi),
    ]

    @Test(arguments: rows)
    func groups(_ row: Row) {
        let grouping = Make.grouping(row.functions, platform: row.platform, acs: row.acs)
        #expect(grouping.sets == row.groups)
        if let subject = row.subject {
            #expect(grouping.rule(subject) == row.subjectRule, "\(grouping.membership(of: PCIAddress(parsing: subject)!)!)")
        }
    }

    @Test("IG-10: the alias path is recorded, naming the bridge that takes over the requester ID")
    func aliasReasonNamesBridge() {
        let grouping = Make.grouping([
            ("00:01.0", Make.rootPort(secondary: 1, subordinate: 2)),
            ("01:00.0", Make.bridge(nil, vendor: 0x1b21, device: 0x1080, primary: 1, secondary: 2)),
            ("02:00.0", Make.endpoint(nil)),
        ])
        let membership = grouping.membership(of: PCIAddress(parsing: "02:00.0")!)!
        #expect(membership.rule.id == "IG-10")
        #expect(membership.joined == PCIAddress(parsing: "01:00.0"))
        #expect(membership.details.last!.contains("quirk_use_pcie_bridge_dma_alias"))
    }

    @Test("Platform scope: AMD-Vi leaves the root complex and the IOMMU function ungrouped")
    func amdScope() {
        let grouping = Make.grouping(
            [("00:00.0", Make.hostBridge(vendor: 0x1022, device: 0x1410)),
             ("00:00.2", ConfigSpaceBuilder(vendor: 0x1022, device: 0x1419, classCode: 0x080600, size: 256)),
             ("00:01.0", Make.endpoint(nil, vendor: 0x1002, device: 0x990e))],
            platform: .amdVi)
        #expect(grouping.ungrouped.map(\.address.shortDescription) == ["00:00.0", "00:00.2"])
        #expect(grouping.groupID("00:01.0") == 0)
    }

    /// ALIAS-02: `pci_devs_are_dma_aliases(d1, d2)` holds when either function's
    /// `dma_alias_mask` names the other's devfn, so it is symmetric. Not modelled: the
    /// `pci_real_dma_dev` clauses (VMD child devices and their VMD endpoint): the simulation has
    /// no VMD domains. Aliases are only ever asked about functions on one bus (ALIAS-01).
    struct AliasPair: CustomTestStringConvertible, Sendable {
        let what: String
        let functions: [(String, ConfigSpaceBuilder)]
        let first: String
        let second: String
        let aliased: Bool
        var testDescription: String { "ALIAS-02: \(what)" }
    }

    static let marvell: [(String, ConfigSpaceBuilder)] = [
        ("01:00.0", Make.endpoint(vendor: 0x1b4b, device: 0x9230, multifunction: true)),
        ("01:00.1", Make.endpoint(vendor: 0x1b4b, device: 0x9230, multifunction: true)),
    ]
    static let micX200: [(String, ConfigSpaceBuilder)] = [
        ("01:00.0", Make.endpoint(vendor: 0x8086, device: 0x2264)), ("01:12.1", Make.endpoint()), ("01:12.3", Make.endpoint()),
    ]

    static let aliasPairs: [AliasPair] = [
        AliasPair(what: "d2's devfn is in d1's mask (Marvell function 0 aliases function 1)", functions: marvell,
                  first: "01:00.0", second: "01:00.1", aliased: true),
        AliasPair(what: "d1's devfn is in d2's mask: asked from function 1, the answer is the same", functions: marvell,
                  first: "01:00.1", second: "01:00.0", aliased: true),
        AliasPair(what: "neither mask names the other: same slot, no quirk, no alias",
                  functions: [("01:00.0", Make.endpoint(multifunction: true)), ("01:00.1", Make.endpoint(multifunction: true))],
                  first: "01:00.0", second: "01:00.1", aliased: false),
        AliasPair(what: "MIC x200: 12.3 is in 00.0's mask", functions: micX200, first: "01:12.3", second: "01:00.0", aliased: true),
        AliasPair(what: "MIC x200: 12.1 is not", functions: micX200, first: "01:12.1", second: "01:00.0", aliased: false),
    ]

    @Test(arguments: aliasPairs)
    func devsAreDMAAliases(_ pair: AliasPair) {
        let topology = Make.topology(pair.functions)
        let aliases = DMAAliases(topology: topology)
        let first = topology.index(of: PCIAddress(parsing: pair.first)!)!
        let second = topology.index(of: PCIAddress(parsing: pair.second)!)!
        #expect(aliases.areAliases(first, second) == pair.aliased)
    }

    /// Platform detection: AMD-Vi for an AMD IOMMU function on a root bus or an AMD/Hygon host
    /// bridge, VT-d for an Intel/Zhaoxin one, PowerNV for IBM PHBs, SMMUv3 when nothing looks x86;
    /// an unreadable or unknown host bridge on an x86-looking machine is a guess with a warning.
    struct PlatformRow: CustomTestStringConvertible, Sendable {
        let what: String
        let functions: [(String, ConfigSpaceBuilder)]
        let expected: IOMMUPlatformKind
        let guessed: Bool
        var testDescription: String { what }
    }

    static func function(_ vendor: UInt16, _ device: UInt16, _ classCode: UInt32) -> ConfigSpaceBuilder {
        ConfigSpaceBuilder(vendor: vendor, device: device, classCode: classCode, size: 256)
    }

    static let platformRows: [PlatformRow] = [
        PlatformRow(what: "Intel host bridge", functions: [("00:00.0", function(0x8086, 0x2020, 0x060000))], expected: .intelVTd, guessed: false),
        PlatformRow(what: "Zhaoxin host bridge", functions: [("00:00.0", function(0x1d17, 0x31b0, 0x060000))], expected: .intelVTd, guessed: false),
        PlatformRow(what: "AMD host bridge", functions: [("00:00.0", function(0x1022, 0x1410, 0x060000))], expected: .amdVi, guessed: false),
        PlatformRow(what: "Hygon host bridge", functions: [("00:00.0", function(0x1d94, 0x1450, 0x060000))], expected: .amdVi, guessed: false),
        PlatformRow(what: "AMD IOMMU function on the root bus", functions: [("00:00.2", function(0x1022, 0x1419, 0x080600))], expected: .amdVi, guessed: false),
        PlatformRow(what: "IBM PHB", functions: [("00:00.0", function(0x1014, 0x04c1, 0x060400))], expected: .powerNV, guessed: false),
        PlatformRow(what: "Cadence root port, no host bridge", functions: [("00:00.0", function(0x17cd, 0x0100, 0x060400))], expected: .armSMMUv3, guessed: false),
        PlatformRow(what: "Ampere root complex (a host bridge of an ARM vendor, nothing x86)",
                    functions: [("00:00.0", function(0x1def, 0xe100, 0x060000)), ("00:01.0", function(0x1def, 0xe101, 0x060400))],
                    expected: .armSMMUv3, guessed: false),
        PlatformRow(what: "unreadable host bridge beside an unreadable IOMMU function (class 0806): AMD-Vi, guessed",
                    functions: [("00:00.0", function(0xffff, 0xffff, 0x060000)), ("00:00.2", function(0xffff, 0xffff, 0x080600))],
                    expected: .amdVi, guessed: true),
        PlatformRow(what: "unreadable host bridge, Intel functions on the root bus: VT-d, guessed",
                    functions: [("00:00.0", function(0xffff, 0xffff, 0x060000)), ("00:1f.0", function(0x8086, 0xa304, 0x060100))],
                    expected: .intelVTd, guessed: true),
        PlatformRow(what: "unreadable host bridge, AMD functions on the root bus: AMD-Vi, guessed",
                    functions: [("00:00.0", function(0xffff, 0xffff, 0x060000)), ("00:14.0", function(0x1022, 0x790b, 0x0c0500))],
                    expected: .amdVi, guessed: true),
        PlatformRow(what: "VIA host bridge with an ISA bridge: VT-d, guessed",
                    functions: [("00:00.0", function(0x1106, 0x0324, 0x060000)), ("00:11.0", function(0x1106, 0x8409, 0x060100))],
                    expected: .intelVTd, guessed: true),
    ]

    @Test(arguments: platformRows)
    func detection(_ row: PlatformRow) {
        let detection = IOMMUPlatformDetection(Make.topology(row.functions))
        #expect(detection.kind == row.expected, "\(detection.reason)")
        #expect((detection.warning != nil) == row.guessed, "\(detection.warning ?? "no warning")")
        if let warning = detection.warning {
            #expect(warning.contains("assumed \(row.expected)") && warning.contains("--platform"), "\(warning)")
        }
    }

    @Test("PowerNV: groups are firmware PEs, so none are computed")
    func powerNVUnavailable() {
        let grouping = Make.grouping([("00:00.0", Make.bridge(nil, vendor: 0x1014, device: 0x04c1, secondary: 1))], platform: .powerNV)
        #expect(grouping.groups.isEmpty)
        #expect(grouping.unavailableReason?.contains("IODA") == true)
    }
}
