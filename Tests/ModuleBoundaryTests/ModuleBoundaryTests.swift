import Foundation
import Testing

/// The package's arrows (ARCHITECTURE.md, the map at the top of `Package.swift`): which module may
/// import which. Every `import` in `Sources/` and `devices/` is checked against this table, and the
/// table itself against the layer order, so a lower module cannot see an upper one and a user of
/// the boundary cannot reach past it — together with `MemberImportVisibility`, which keeps a
/// module from using members of anything it does not import.
@Suite("Module boundaries: imports follow the arrows")
struct ModuleBoundaryTests {
    /// Layer of each module: a module may import only modules of a lower layer (or the toolchain's).
    static let layer: [String: Int] = [
        "CPciAccess": 0, "CRCU": 0, "CMMIOTrap": 0, "CPreload": 0, "CBenchSupport": 0, "Locking": 0, "KernelRules": 0, "EmbeddedMachines": 0,
        "PCIBus": 1,
        "IOMMU": 2,
        "UserMemory": 3,
        "IOMMUFD": 4, "DeviceModels": 4,
        "VFIO": 5,
        "Machine": 6,
        "Syscalls": 7,
        // The preload library: a program's libc calls onto the boundary.
        "VFIOKitPreload": 8,
        // Users of the boundary.
        "SampleDrivers": 8, "Samples": 9, "Benchmarks": 9, "FuzzTargets": 9, "vfiokit": 10, "vfiokit-fuzz": 10, "vfiokit-bench-client": 10,
    ]

    /// What each module may import, beyond the toolchain. Device models never see VFIO; sample
    /// drivers and samples never see the IOMMU core (they read sysfs links and the kernel log).
    static let allowed: [String: Set<String>] = [
        "Locking": [], "KernelRules": [], "EmbeddedMachines": [],
        "PCIBus": ["CPciAccess", "Locking", "KernelRules", "EmbeddedMachines"],
        "IOMMU": ["PCIBus", "Locking", "CRCU", "KernelRules"],
        "UserMemory": ["IOMMU", "Locking", "CMMIOTrap", "KernelRules"],
        "IOMMUFD": ["PCIBus", "IOMMU", "UserMemory", "Locking", "KernelRules"],
        "VFIO": ["PCIBus", "IOMMU", "UserMemory", "IOMMUFD", "Locking", "KernelRules"],
        "DeviceModels": ["PCIBus", "IOMMU", "UserMemory", "Locking", "KernelRules"],
        "Machine": ["PCIBus", "IOMMU", "UserMemory", "VFIO", "DeviceModels", "KernelRules", "EmbeddedMachines"],
        "Syscalls": ["PCIBus", "IOMMU", "UserMemory", "IOMMUFD", "VFIO", "Machine", "Locking", "CMMIOTrap", "KernelRules"],
        "VFIOKitPreload": ["CPreload", "PCIBus", "UserMemory", "VFIO", "Machine", "Syscalls", "KernelRules"],
        "SampleDrivers": ["PCIBus", "UserMemory", "VFIO", "Syscalls", "KernelRules"],
        "Samples": ["PCIBus", "VFIO", "Machine", "SampleDrivers"],
        "Benchmarks": ["PCIBus", "IOMMU", "UserMemory", "IOMMUFD", "VFIO", "DeviceModels", "Machine", "SampleDrivers", "Syscalls", "Locking", "KernelRules", "CBenchSupport"],
        "FuzzTargets": ["PCIBus", "IOMMU", "UserMemory", "VFIO", "DeviceModels", "Machine", "Syscalls", "KernelRules"],
        "vfiokit": [
            "PCIBus", "IOMMU", "UserMemory", "VFIO", "DeviceModels", "Machine", "Syscalls", "SampleDrivers", "Benchmarks", "KernelRules",
            "ArgumentParser",
        ],
        "vfiokit-fuzz": ["FuzzTargets"],
        // A C program: it reaches VFIO only through the preload library, as any program does.
        "vfiokit-bench-client": [],
    ]

    /// Modules of the toolchain and the platform, which any module may import.
    static let toolchain: Set<String> = ["Foundation", "Glibc", "Dispatch", "Synchronization", "SystemPackage"]

    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

    /// The module a source file belongs to: its folder under `Sources/` (`Samples/*` are one kind).
    static func module(of path: String) -> String? {
        if path.hasPrefix("devices/") { return "EmbeddedMachines" }
        let parts = path.split(separator: "/")
        guard parts.count > 2, parts[0] == "Sources" else { return nil }
        return String(parts[1])
    }

    /// Every Swift file of `Sources/` and `devices/` with the modules it imports.
    static func sourceImports() -> [(path: String, module: String, imports: [String])] {
        var files: [(String, String, [String])] = []
        for top in ["Sources", "devices"] {
            let base = root.appendingPathComponent(top)
            guard let walker = FileManager.default.enumerator(atPath: base.path) else { continue }
            while let relative = walker.nextObject() as? String {
                guard relative.hasSuffix(".swift") else { continue }
                let path = top + "/" + relative
                guard let module = module(of: path), let text = try? String(contentsOf: base.appendingPathComponent(relative), encoding: .utf8)
                else { continue }
                let imports = text.split(separator: "\n").compactMap { line -> String? in
                    let words = line.split(separator: " ")
                    guard let index = words.firstIndex(of: "import"), index <= 1, index + 1 < words.count else { return nil }
                    guard index == 0 || words[0] == "@testable" || words[0] == "@_exported" else { return nil }
                    return String(words[index + 1])
                }
                files.append((path, module, imports))
            }
        }
        return files
    }

    @Test("the table is layered: every allowed import is of a lower layer")
    func tableIsLayered() {
        for (module, imports) in Self.allowed {
            let rank = Self.layer[module]
            #expect(rank != nil, "\(module) has no layer")
            for imported in imports where !["ArgumentParser"].contains(imported) {
                let importedRank = Self.layer[imported]
                #expect(importedRank != nil && rank != nil && importedRank! < rank!, "\(module) (layer \(rank ?? -1)) may not import \(imported) (layer \(importedRank ?? -1))")
            }
        }
    }

    @Test("every import in Sources/ and devices/ follows the table")
    func importsFollowTheTable() {
        let files = Self.sourceImports()
        #expect(files.count > 100, "found only \(files.count) source files under \(Self.root.path)")
        for file in files {
            guard let allowed = Self.allowed[file.module] else { continue }
            for imported in file.imports where !Self.toolchain.contains(imported) && !allowed.contains(imported) {
                Issue.record("\(file.path): \(file.module) may not import \(imported)")
            }
        }
    }

    @Test("no module re-exports another (@_exported) and no sample driver reaches the IOMMU core")
    func noBackdoors() throws {
        for file in Self.sourceImports() {
            let text = try String(contentsOf: Self.root.appendingPathComponent(file.path), encoding: .utf8)
            #expect(!text.contains("@_exported"), "\(file.path) re-exports a module")
            if ["SampleDrivers", "Samples"].contains(file.module) {
                #expect(!text.contains("IOMMUCore") && !text.contains(".core."), "\(file.path) reaches the IOMMU core")
            }
        }
    }

    @Test("every Sources/ folder is a module of the table")
    func everyModuleIsPlaced() throws {
        let folders = try FileManager.default.contentsOfDirectory(atPath: Self.root.appendingPathComponent("Sources").path)
        for folder in folders where !folder.hasPrefix(".") {
            #expect(Self.layer[folder] != nil, "Sources/\(folder) is in no layer of the table")
        }
    }
}
