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
        // The running binary itself, through any symlink an install put in front of it.
        let executable = URL(fileURLWithPath: "/proc/self/exe").resolvingSymlinksInPath()
        return [
            executable.deletingLastPathComponent().appendingPathComponent(bundleName).path,
            URL(fileURLWithPath: #filePath).deletingLastPathComponent().path,
        ]
    }

    /// The directory of the embedded machine `name`, or nil when no search path holds it.
    public static func directory(named name: String) -> String? {
        guard !name.isEmpty, !name.contains("/"), name != ".", name != ".." else { return nil }
        return searchPaths.map { $0 + "/" + name }.first { FileManager.default.fileExists(atPath: $0 + "/manifest.json") }
    }
}
