import Foundation
import PCIBus

@testable import IOMMU

/// The project's fixture machines, loaded into an IOMMU core the way `vfiokit` does.
enum TestMachines {
    static let devicesDirectory = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent().appendingPathComponent("devices").path

    static func snapshot(_ name: String) throws -> BusSnapshot {
        try BusSnapshot.load(.machine(FixtureMachine.load(directory: devicesDirectory + "/" + name)))
    }

    /// `devices/NAME` with its manifest's IOMMU configuration, optionally another profile, extra
    /// untrusted devices, a global default domain type and extra firmware regions.
    static func core(
        _ name: String = "default", profile: PlatformProfile? = nil, untrusted: [String] = [],
        defaultDomainType: IOMMUDomainType? = nil, firmwareRegions: [String: [FirmwareRegion]] = [:]
    ) throws -> IOMMUCore {
        let snapshot = try snapshot(name)
        var configuration = try IOMMUConfiguration.of(snapshot)!
        if let profile { configuration.profile = profile }
        configuration.untrusted.formUnion(untrusted.map(address))
        if let defaultDomainType { configuration.defaultDomainType = defaultDomainType }
        for (device, regions) in firmwareRegions { configuration.firmwareRegions[address(device), default: []] += regions }
        return try IOMMUCore(snapshot: snapshot, configuration: configuration)
    }

    static func address(_ text: String) -> PCIAddress { PCIAddress(parsing: text.count <= 4 ? "00:" + text : text)! }
}
