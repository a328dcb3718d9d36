import EmbeddedMachines
import Foundation
import SystemPackage

/// A machine under `devices/`: an `lspci -xxxx` dump and a manifest saying which platform it is,
/// which driver each function is bound to and which groups the kernel forms on it.
public struct FixtureMachine: Sendable {
    public struct ExpectedGroup: Sendable, Codable, Equatable {
        public let id: Int
        public let devices: [PCIAddress]
        public let reason: String
    }

    /// The manifest file (`manifest.json`). Unknown keys are for later layers and ignored here.
    struct Manifest: Codable {
        let name: String
        let description: String
        let platform: IOMMUPlatformKind
        let dump: String
        let drivers: [String: String]?
        let expectedGroups: [ExpectedGroup]
        let ungrouped: [PCIAddress]?
        let iommuUnits: [ManifestUnit]?
    }

    /// One entry of `iommuUnits`, in registration order: the functions (`devices`), root buses
    /// (`roots`, `"DDDD:BB"`) or everything unclaimed (`includeAll`) the unit translates.
    struct ManifestUnit: Codable {
        let name: String
        let devices: [PCIAddress]?
        let roots: [String]?
        let includeAll: Bool?
    }

    public let name: String
    public let directory: String
    public let description: String
    public let platform: IOMMUPlatformKind
    public let dumpPath: String
    public let drivers: [PCIAddress: String]
    public let expectedGroups: [ExpectedGroup]
    public let ungrouped: [PCIAddress]
    /// The IOMMU units in registration order (`iommuUnits`), which number the groups; nil when
    /// the manifest does not say (they are inferred, `IOMMUUnitOrder.inferred`).
    public let iommuUnits: IOMMUUnitOrder?
    /// The manifest's bytes, so the layers above decode their own keys without reading it again.
    public let manifestData: Data

    /// Reads `DIR/manifest.json`.
    public static func load(directory: String) throws(PCIBusError) -> FixtureMachine {
        let path = directory + "/manifest.json"
        let file = try MappedFile(path: path)
        let manifest: Manifest
        let data = Data(file.bytes)
        do {
            manifest = try JSONDecoder().decode(Manifest.self, from: data)
        } catch {
            throw PCIBusError(.invalidManifest, .invalidArgument, "\(path): invalid machine manifest: \(error)")
        }
        var drivers: [PCIAddress: String] = [:]
        for (key, driver) in manifest.drivers ?? [:] {
            guard let address = PCIAddress(parsing: key) else {
                throw PCIBusError(.invalidManifest, .invalidArgument, "\(path): drivers: \"\(key)\" is not a PCI address")
            }
            drivers[address] = driver
        }
        var units: IOMMUUnitOrder?
        if let entries = manifest.iommuUnits {
            var parsed: [IOMMUUnitOrder.Unit] = []
            for entry in entries {
                var roots: Set<PCIBusNode.Key> = []
                for root in entry.roots ?? [] {
                    let parts = root.split(separator: ":")
                    guard parts.count == 2, let domain = UInt32(parts[0], radix: 16), let bus = UInt8(parts[1], radix: 16) else {
                        throw PCIBusError(.invalidManifest, .invalidArgument, "\(path): iommuUnits: root \"\(root)\" is not DDDD:BB")
                    }
                    roots.insert(PCIBusNode.Key(domain: domain, number: bus))
                }
                parsed.append(.init(name: entry.name, devices: Set(entry.devices ?? []), roots: roots, includeAll: entry.includeAll ?? false))
            }
            units = IOMMUUnitOrder(units: parsed, origin: "the machine's manifest")
        }
        return FixtureMachine(
            name: manifest.name, directory: directory, description: manifest.description, platform: manifest.platform,
            dumpPath: directory + "/" + manifest.dump, drivers: drivers, expectedGroups: manifest.expectedGroups,
            ungrouped: manifest.ungrouped ?? [], iommuUnits: units, manifestData: data)
    }

    /// The directory of machine `nameOrPath`: a path (anything with a `/`) is taken as it is; a
    /// name is looked up in `$VFIOKIT_DEVICES`, then among the embedded machines the package ships
    /// (`EmbeddedMachines`), so it loads the same from a checkout, a dependent package or an
    /// installed binary.
    public static func locate(_ nameOrPath: String) throws(PCIBusError) -> String {
        if nameOrPath.contains("/") {
            guard FileManager.default.fileExists(atPath: nameOrPath + "/manifest.json") else {
                throw PCIBusError(.fileNotFound, .noSuchFileOrDirectory, "machine directory \(nameOrPath) has no manifest.json")
            }
            return nameOrPath
        }
        if let env = ProcessInfo.processInfo.environment["VFIOKIT_DEVICES"],
            FileManager.default.fileExists(atPath: env + "/" + nameOrPath + "/manifest.json")
        {
            return env + "/" + nameOrPath
        }
        if let embedded = EmbeddedMachines.directory(named: nameOrPath) { return embedded }
        throw PCIBusError(
            .fileNotFound, .noSuchFileOrDirectory,
            "machine \"\(nameOrPath)\" not found: not in $VFIOKIT_DEVICES and not an embedded machine (looked in: \(EmbeddedMachines.searchPaths.joined(separator: ", "))); give a directory path for any other machine")
    }

    /// Loads the dump and applies the manifest's driver bindings.
    public func topology(options: PCIEnumerator.Options = .init()) throws(PCIBusError) -> PCITopology {
        let enumeration = try PCIEnumerator.enumerate(.dump(path: dumpPath), options: options)
        let functions = enumeration.functions.map { function -> PCIFunction in
            var bound = function
            bound.driver = drivers[function.address]
            return bound
        }
        return PCITopology(
            functions: functions, source: enumeration.source, capabilityIssues: enumeration.capabilityIssues)
    }
}
