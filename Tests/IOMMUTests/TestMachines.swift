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

    /// A copy of `devices/NAME` in a new temporary directory whose manifest has the members of the
    /// JSON object `{keys}` set over its own, as a person would edit it; returns the directory.
    static func variant(of name: String = "default", keys: String) throws -> String {
        let original = URL(fileURLWithPath: devicesDirectory).appendingPathComponent(name)
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("iommu-manifest-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        var manifest = try JSONSerialization.jsonObject(with: Data(contentsOf: original.appendingPathComponent("manifest.json"))) as! [String: Any]
        let dump = manifest["dump"] as! String
        try FileManager.default.copyItem(at: original.appendingPathComponent(dump), to: directory.appendingPathComponent(dump))
        let overrides = try JSONSerialization.jsonObject(with: Data("{\(keys)}".utf8)) as! [String: Any]
        manifest.merge(overrides) { _, new in new }
        try JSONSerialization.data(withJSONObject: manifest).write(to: directory.appendingPathComponent("manifest.json"))
        return directory.path
    }

    static func address(_ text: String) -> PCIAddress { PCIAddress(parsing: text.count <= 4 ? "00:" + text : text)! }
}
