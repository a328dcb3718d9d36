import Foundation

/// The machines of `devices/`, shipped with the package as resources: a dependent package, its
/// tests and an installed `vfiokit` load them by name (`SimulatedMachine.load(machine: "default")`).
public enum EmbeddedMachines {
    /// The bundle SwiftPM copies `devices/*/` into (`<package>_<target>.resources`).
    static let bundleName = "VFIOKit_EmbeddedMachines.resources"

    /// Where the embedded machines live, first match wins: the resource bundle beside the running
    /// executable (an installed binary, a test bundle, a dependent package's build), then this
    /// package's own `devices/` folder (a checkout, or a dependent package's `.build/checkouts`).
    public static var searchPaths: [String] {
        var paths: [String] = []
        let executable = URL(fileURLWithPath: CommandLine.arguments.first ?? "").resolvingSymlinksInPath()
        paths.append(executable.deletingLastPathComponent().appendingPathComponent(bundleName).path)
        paths.append(Bundle.main.bundleURL.appendingPathComponent(bundleName).path)
        paths.append(URL(fileURLWithPath: #filePath).deletingLastPathComponent().path)
        return paths
    }

    /// The directory of the embedded machine `name`, or nil when no search path holds it.
    public static func directory(named name: String) -> String? {
        guard !name.isEmpty, !name.contains("/"), name != ".", name != ".." else { return nil }
        return searchPaths.map { $0 + "/" + name }.first { FileManager.default.fileExists(atPath: $0 + "/manifest.json") }
    }
}
