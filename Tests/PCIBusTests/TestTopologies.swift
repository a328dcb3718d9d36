import KernelRules
import PCIBus

/// Builders for small topologies used by the conformance tables: each test states its machine
/// in a few lines and the grouping runs on exactly those config spaces (no libpci involved).
enum Make {
    static let fullACS: ACSFlags = .requiredForIsolation

    static func rootPort(
        vendor: UInt16 = 0x8086, device: UInt16 = 0x2030, secondary: UInt8, subordinate: UInt8? = nil,
        acs: ACSFlags? = fullACS, control: ACSFlags = [], multifunction: Bool = false
    ) -> ConfigSpaceBuilder {
        bridge(.rootPort, vendor: vendor, device: device, primary: 0, secondary: secondary,
               subordinate: subordinate, acs: acs, control: control, multifunction: multifunction)
    }

    static func bridge(
        _ type: PCIePortType?, vendor: UInt16 = 0x10b5, device: UInt16 = 0x8796, primary: UInt8 = 0,
        secondary: UInt8, subordinate: UInt8? = nil, acs: ACSFlags? = nil, control: ACSFlags = [],
        multifunction: Bool = false
    ) -> ConfigSpaceBuilder {
        var builder = ConfigSpaceBuilder(
            vendor: vendor, device: device, classCode: 0x060400, headerType: .bridge, multifunction: multifunction,
            size: type == nil ? 256 : 4096)
        if let type { builder.addPCIExpress(type) }
        if let acs { builder.addACS(capability: acs, control: control) }
        builder.setBuses(primary: primary, secondary: secondary, subordinate: subordinate ?? secondary)
        return builder
    }

    static func endpoint(
        _ type: PCIePortType? = .endpoint, vendor: UInt16 = 0x144d, device: UInt16 = 0xa808,
        classCode: UInt32 = 0x010802, multifunction: Bool = false, acs: ACSFlags? = nil, control: ACSFlags = [],
        flr: Bool = false
    ) -> ConfigSpaceBuilder {
        var builder = ConfigSpaceBuilder(
            vendor: vendor, device: device, classCode: classCode, multifunction: multifunction,
            size: type == nil ? 256 : 4096)
        if let type { builder.addPCIExpress(type, flr: flr) }
        if let acs { builder.addACS(capability: acs, control: control) }
        return builder
    }

    static func hostBridge(vendor: UInt16 = 0x8086, device: UInt16 = 0x2020) -> ConfigSpaceBuilder {
        ConfigSpaceBuilder(vendor: vendor, device: device, classCode: 0x060000, size: 256)
    }

    static func topology(_ functions: [(String, ConfigSpaceBuilder)]) -> PCITopology {
        PCITopology(
            functions: functions.map { PCIFunction(address: PCIAddress(parsing: $0.0)!, config: PCIConfigSpace(bytes: $0.1.bytes)) },
            source: .dump(path: "<test>"))
    }

    static func grouping(
        _ functions: [(String, ConfigSpaceBuilder)], platform: IOMMUPlatformKind = .intelVTd,
        acs: ACSEnablePolicy = .bootEnable
    ) -> IsolationGrouping {
        IsolationGrouping(topology: topology(functions), configuration: .init(platform: platform, acsPolicy: acs))
    }
}

extension IsolationGrouping {
    /// Groups as sorted address lists, in group-ID order: what tests compare.
    var sets: [[String]] { groups.map { $0.sortedMembers.map(\.shortDescription) } }

    func groupID(_ address: String) -> Int? { group(of: PCIAddress(parsing: address)!)?.id }
    func rule(_ address: String) -> String? { membership(of: PCIAddress(parsing: address)!)?.rule.id }
}
