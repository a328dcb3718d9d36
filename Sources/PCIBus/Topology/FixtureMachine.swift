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
    }

    public let name: String
    public let directory: String
    public let description: String
    public let platform: IOMMUPlatformKind
    public let dumpPath: String
    public let drivers: [PCIAddress: String]
    public let expectedGroups: [ExpectedGroup]
    public let ungrouped: [PCIAddress]
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
        return FixtureMachine(
            name: manifest.name, directory: directory, description: manifest.description, platform: manifest.platform,
            dumpPath: directory + "/" + manifest.dump, drivers: drivers, expectedGroups: manifest.expectedGroups,
            ungrouped: manifest.ungrouped ?? [], manifestData: data)
    }

    /// Finds a machine by name or path: an existing directory as given, else `NAME` under each
    /// search directory (`$VFIOKIT_DEVICES`, `./devices`, and `devices/` beside or above the
    /// running executable, so `swift run` and a built binary both find the repo's machines).
    public static func locate(_ nameOrPath: String, executablePath: String? = CommandLine.arguments.first)
        throws(PCIBusError) -> String
    {
        var candidates: [String] = []
        if nameOrPath.contains("/") {
            candidates.append(nameOrPath)
        } else {
            if let env = ProcessInfo.processInfo.environment["VFIOKIT_DEVICES"] { candidates.append(env + "/" + nameOrPath) }
            candidates.append(FileManager.default.currentDirectoryPath + "/devices/" + nameOrPath)
            if let executablePath {
                var directory = URL(fileURLWithPath: executablePath).resolvingSymlinksInPath().deletingLastPathComponent()
                for _ in 0..<6 {
                    candidates.append(directory.appendingPathComponent("devices/" + nameOrPath).path)
                    directory = directory.deletingLastPathComponent()
                }
            }
        }
        let here = FileManager.default.currentDirectoryPath + "/"
        for candidate in candidates where FileManager.default.fileExists(atPath: candidate + "/manifest.json") {
            return candidate.hasPrefix(here) ? String(candidate.dropFirst(here.count)) : candidate
        }
        throw PCIBusError(
            .fileNotFound, .noSuchFileOrDirectory,
            "machine \"\(nameOrPath)\" not found (looked for manifest.json in: \(candidates.joined(separator: ", ")))")
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
