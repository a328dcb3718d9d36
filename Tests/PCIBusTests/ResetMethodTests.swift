import Testing

@testable import PCIBus

/// Reset methods as `pci_init_reset_methods` would probe them (`flr`, `af_flr`, `pm`, `bus`),
/// with the reset quirks of `drivers/pci/quirks.c` applied. Each row cites the kernel function
/// or quirk that decides it.
@Suite("Reset methods (pci_reset_fn_methods, reset quirks)")
struct ResetMethodTests {
    struct Row: CustomTestStringConvertible, Sendable {
        let cites: String
        let what: String
        let functions: [(String, ConfigSpaceBuilder)]
        let subject: String
        let methods: [String]
        /// The reset quirks that apply to the subject.
        var quirks: [String] = []
        var testDescription: String { "\(cites): \(what)" }
    }

    /// An endpoint with a PM capability (No_Soft_Reset as given) and, optionally, PCIe FLR.
    static func device(
        vendor: UInt16 = 0x144d, device: UInt16 = 0xa808, classCode: UInt32 = 0x010802, revision: UInt8 = 0x01,
        flr: Bool = false, noSoftReset: Bool = false
    ) -> ConfigSpaceBuilder {
        var builder = ConfigSpaceBuilder(vendor: vendor, device: device, classCode: classCode)
        builder.write8(PCIRegister.revision, revision)
        _ = builder.addCapability(PCICapabilityID.powerManagement, body: [0x03, 0x00, noSoftReset ? 0x08 : 0x00, 0x00, 0x00, 0x00])
        _ = builder.addPCIExpress(.endpoint, flr: flr)
        return builder
    }

    static func below(_ subject: ConfigSpaceBuilder) -> [(String, ConfigSpaceBuilder)] {
        [("00:01.0", Make.rootPort(secondary: 1)), ("01:00.0", subject)]
    }

    static let rows: [Row] = [
        Row(cites: "pci_parent_bus_reset", what: "an endpoint alone below a root port: pm and a secondary bus reset",
            functions: below(device()), subject: "01:00.0", methods: ["pm", "bus"]),
        Row(cites: "pcie_reset_flr", what: "FLR advertised in Device Capabilities comes first",
            functions: below(device(flr: true)), subject: "01:00.0", methods: ["flr", "pm", "bus"]),
        Row(cites: "pci_pm_reset", what: "No_Soft_Reset set: the D3hot round trip resets nothing, so no pm",
            functions: below(device(noSoftReset: true)), subject: "01:00.0", methods: ["bus"]),
        Row(cites: "pci_parent_bus_reset", what: "a bridge alone on its bus has a subordinate bus (dev->subordinate): no bus reset",
            functions: [("00:01.0", Make.rootPort(secondary: 1, subordinate: 2)),
                        ("01:00.0", Make.bridge(.upstreamPort, primary: 1, secondary: 2)), ("02:00.0", Make.endpoint())],
            subject: "01:00.0", methods: []),
        Row(cites: "pci_parent_bus_reset", what: "not alone on its bus: no bus reset",
            functions: below(device()) + [("01:00.1", device())], subject: "01:00.0", methods: ["pm"]),
        Row(cites: "pci_parent_bus_reset", what: "on a root bus (no parent bridge): no bus reset",
            functions: [("00:08.0", device())], subject: "00:08.0", methods: ["pm"]),
        Row(cites: "quirk_no_bus_reset", what: "Atheros 168c:003c alone below a root port: no bus reset",
            functions: below(device(vendor: 0x168c, device: 0x003c, classCode: 0x028000)), subject: "01:00.0", methods: ["pm"], quirks: ["quirk_no_bus_reset"]),
        Row(cites: "quirk_no_bus_reset", what: "NVIDIA GB10 root port 10de:22ce is flagged (as a bridge it has no bus reset anyway: dev->subordinate)",
            functions: [("00:01.0", Make.rootPort(secondary: 1)), ("01:00.0", Make.rootPort(vendor: 0x10de, device: 0x22ce, secondary: 2))],
            subject: "01:00.0", methods: [], quirks: ["quirk_no_bus_reset"]),
        Row(cites: "quirk_nvidia_no_bus_reset", what: "NVIDIA 10de:2341 ((device & 0xffc0) == 0x2340): no bus reset",
            functions: below(device(vendor: 0x10de, device: 0x2341, classCode: 0x030200)), subject: "01:00.0", methods: ["pm"], quirks: ["quirk_nvidia_no_bus_reset"]),
        Row(cites: "quirk_nvidia_no_bus_reset", what: "NVIDIA 10de:2380 is outside the mask: bus reset stays",
            functions: below(device(vendor: 0x10de, device: 0x2380, classCode: 0x030200)), subject: "01:00.0", methods: ["pm", "bus"]),
        Row(cites: "quirk_no_flr", what: "Intel 82579LM 8086:1502 advertises FLR that hangs it: no flr",
            functions: below(device(vendor: 0x8086, device: 0x1502, classCode: 0x020000, flr: true)), subject: "01:00.0",
            methods: ["pm", "bus"], quirks: ["quirk_no_flr"]),
        Row(cites: "quirk_no_flr", what: "AMD Matisse USB 1022:149c: no flr",
            functions: below(device(vendor: 0x1022, device: 0x149c, classCode: 0x0c0330, flr: true)), subject: "01:00.0",
            methods: ["pm", "bus"], quirks: ["quirk_no_flr"]),
        Row(cites: "quirk_no_flr_snet", what: "SolidRun SNET DPU d063:1000 revision 1: no flr",
            functions: below(device(vendor: 0xd063, device: 0x1000, classCode: 0x020000, revision: 0x01, flr: true)),
            subject: "01:00.0", methods: ["pm", "bus"], quirks: ["quirk_no_flr_snet"]),
        Row(cites: "quirk_no_flr_snet", what: "SolidRun SNET DPU d063:1000 revision 2: flr stays",
            functions: below(device(vendor: 0xd063, device: 0x1000, classCode: 0x020000, revision: 0x02, flr: true)),
            subject: "01:00.0", methods: ["flr", "pm", "bus"]),
        Row(cites: "quirk_no_pm_reset", what: "ATI VGA 1002:67df below a root port: no pm",
            functions: below(device(vendor: 0x1002, device: 0x67df, classCode: 0x030000)), subject: "01:00.0", methods: ["bus"], quirks: ["quirk_no_pm_reset"]),
        Row(cites: "quirk_no_pm_reset", what: "ATI VGA on the root bus: the quirk's own test leaves pm",
            functions: [("00:01.0", device(vendor: 0x1002, device: 0x9874, classCode: 0x030000))], subject: "00:01.0", methods: ["pm"]),
        Row(cites: "quirk_no_pm_reset", what: "ATI HDMI audio (class 0403) is not VGA: pm stays",
            functions: below(device(vendor: 0x1002, device: 0xaaf0, classCode: 0x040300)), subject: "01:00.0", methods: ["pm", "bus"]),
    ]

    @Test(arguments: rows)
    func methods(_ row: Row) {
        let snapshot = BusSnapshot(origin: .dump(path: "<test>"), topology: Make.topology(row.functions))
        let address = PCIAddress(parsing: row.subject)!
        #expect(snapshot.resetMethods(of: address) == row.methods)
        #expect(snapshot.resetQuirks(of: address).quirks == row.quirks)
    }
}
