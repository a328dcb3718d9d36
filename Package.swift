// swift-tools-version: 6.1
import Foundation
import PackageDescription

// Two sides, arrows pointing down only (docs/architecture.md). `Tests/ModuleBoundaryTests` checks
// every import against these arrows, and `MemberImportVisibility` keeps a module from using the
// members of a module it does not import:
//
//   users:             vfiokit   Samples/*   SampleDrivers   Benchmarks
//                          \         |          /
//   boundary:                     Syscalls            fd table, paths, open/ioctl/pread/pwrite/mmap/close
//   ─────────────────────────────────┼──────────────────────────────────────────────────────────────
//   simulated kernel:             Machine             a topology + IOMMU + VFIO + devices, wired
//                                /       \
//                            VFIO     DeviceModels    vfio-pci, type1, device cdev | virtual PCI hardware
//                              |         |
//                           IOMMUFD      |            iommufd: IOAS, HWPT, bound devices, VFIO compat
//                                \       /
//                               UserMemory            the process's memory: allocation, pinning
//                                    |
//                                  IOMMU              IOMMU core, domains, page tables, DMA path
//                                    |
//                                  PCIBus             topology, groups, the PCI device seam
//                                    |
//                     CPciAccess, EmbeddedMachines    libpci | devices/ as resources

/// Every folder of `devices/` is an embedded machine, shipped as a resource.
let embeddedMachines = ((try? FileManager.default.contentsOfDirectory(atPath: Context.packageDirectory + "/devices")) ?? [])
    .filter { FileManager.default.fileExists(atPath: Context.packageDirectory + "/devices/" + $0 + "/manifest.json") }
    .sorted()

let system = Target.Dependency.product(name: "SystemPackage", package: "swift-system")

/// A module sees members only of the modules it imports (SE-0444), so a driver that does not
/// import `IOMMU` cannot reach the IOMMU core's members through a value it was handed.
let importedMembersOnly: [SwiftSetting] = [.enableUpcomingFeature("MemberImportVisibility")]

let package = Package(
    name: "VFIOKit",
    products: [
        // One module per layer; a userspace driver imports the ones it uses.
        .library(
            name: "VFIOKit",
            targets: ["PCIBus", "IOMMU", "UserMemory", "IOMMUFD", "VFIO", "DeviceModels", "Machine", "Syscalls", "SampleDrivers", "EmbeddedMachines"]),
        .executable(name: "vfiokit", targets: ["vfiokit"]),
        // LD_PRELOAD'ed into an unmodified program by `vfiokit run` (or linked by one that calls
        // `vfiokit_start`, Sources/CPreload/include/vfiokit.h): its VFIO system calls reach the simulation.
        .library(name: "vfiokit-preload", type: .dynamic, targets: ["VFIOKitPreload"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
        .package(url: "https://github.com/apple/swift-system", from: "1.4.0"),
    ],
    targets: [
        .systemLibrary(
            name: "CPciAccess",
            path: "CPciAccess",
            pkgConfig: "libpci",
            providers: [.apt(["libpci-dev"])]
        ),
        // The one lock every layer uses (a pthread mutex ThreadSanitizer can see).
        .target(name: "Locking"),
        // What userspace RCU needs from C: a thread-local pointer, a compiler barrier, membarrier(2).
        .target(name: "CRCU"),
        // The process's SIGSEGV/SIGBUS handling: register BARs mapped PROT_NONE whose loads and stores
        // trap, decoded (x86-64) and emulated as one access of their exact width; and copies from and
        // to user memory that come back with EFAULT instead of a signal.
        .target(name: "CMMIOTrap"),
        // The spec's rule IDs and the one error shape every layer uses (errno, rule, message, cause).
        .target(name: "KernelRules", dependencies: [system]),
        // devices/: the fixture machines, found by name wherever the package is built or installed.
        .target(
            name: "EmbeddedMachines", path: "devices", exclude: ["README.md", "render.py"],
            sources: ["EmbeddedMachines.swift"], resources: embeddedMachines.map { .copy($0) }),

        // ── The simulated kernel and its hardware ──
        .target(name: "PCIBus", dependencies: ["KernelRules", "CPciAccess", "Locking", "EmbeddedMachines", system]),
        .target(name: "IOMMU", dependencies: ["KernelRules", "PCIBus", "Locking", "CRCU", system]),
        // The simulated process's memory: what drivers allocate and what type1 pins (`get_user_pages`).
        .target(name: "UserMemory", dependencies: ["KernelRules", "IOMMU", "Locking", "CMMIOTrap", system]),
        // iommufd: IOAS, HW page tables, bound devices and VFIO compatibility, on the IOMMU core.
        .target(name: "IOMMUFD", dependencies: ["KernelRules", "UserMemory", "PCIBus", "IOMMU", "Locking", system]),
        .target(name: "VFIO", dependencies: ["KernelRules", "UserMemory", "PCIBus", "IOMMU", "IOMMUFD", "Locking", system]),
        // Hardware: implements the PCI device seam and DMAs through the IOMMU; never sees VFIO.
        .target(name: "DeviceModels", dependencies: ["KernelRules", "UserMemory", "PCIBus", "IOMMU", "Locking", system]),
        // The only place devices meet VFIO: a topology, its IOMMU, vfio-pci and the models, wired.
        .target(name: "Machine", dependencies: ["KernelRules", "UserMemory", "PCIBus", "IOMMU", "VFIO", "DeviceModels", "EmbeddedMachines", system]),

        // ── The system-call boundary ──
        .target(name: "Syscalls", dependencies: ["KernelRules", "UserMemory", "PCIBus", "IOMMU", "IOMMUFD", "VFIO", "Machine", "Locking", "CMMIOTrap", system]),

        // ── The preload library: a program's own libc calls, interposed, onto the boundary ──
        .target(name: "CPreload", dependencies: ["CMMIOTrap"], linkerSettings: [.linkedLibrary("dl")]),
        .target(name: "VFIOKitPreload", dependencies: ["CPreload", "KernelRules", "PCIBus", "UserMemory", "VFIO", "Machine", "Syscalls", system]),

        // ── Users of the boundary ──
        // Userspace drivers: the boundary and the public VFIO API only, as a real driver would.
        .target(name: "SampleDrivers", dependencies: ["KernelRules", "UserMemory", "PCIBus", "VFIO", "Syscalls", system]),
        // `vfiokit bench`: every figure against a baseline measured in the same run.
        .target(name: "Benchmarks", dependencies: ["KernelRules", "UserMemory", "PCIBus", "IOMMU", "IOMMUFD", "VFIO", "DeviceModels", "Machine", "SampleDrivers", "Syscalls", "Locking", "CBenchSupport"]),
        // What only C can measure for the bench: readl-style loads and a bare SIGSEGV round trip.
        .target(name: "CBenchSupport"),
        // The C program the bench's preload entries run under the preload library: an ordinary
        // program even in a sanitizer build (the preload library brings the sanitizer's runtime).
        .executableTarget(
            name: "vfiokit-bench-client", path: "Sources/vfiokit-bench-client",
            cSettings: [.unsafeFlags(["-fno-sanitize=all"])], linkerSettings: [.unsafeFlags(["-Xclang-linker", "-fno-sanitize=all"])]),
        .executableTarget(
            name: "vfiokit",
            dependencies: [
                "KernelRules", "PCIBus", "IOMMU", "UserMemory", "VFIO", "DeviceModels", "Machine", "Syscalls", "SampleDrivers", "Benchmarks",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ]
        ),
        // Sample userspace drivers, one executable each.
        .executableTarget(name: "memcpy-driver", dependencies: ["Machine", "SampleDrivers", "VFIO", "PCIBus"], path: "Sources/Samples/memcpy-driver"),
        .executableTarget(
            name: "nic-loopback-driver", dependencies: ["Machine", "SampleDrivers", "VFIO", "PCIBus"], path: "Sources/Samples/nic-loopback-driver"),
        .executableTarget(name: "nvme-driver", dependencies: ["Machine", "SampleDrivers", "VFIO", "PCIBus"], path: "Sources/Samples/nvme-driver"),

        .testTarget(name: "PCIBusTests", dependencies: ["PCIBus", "KernelRules", "EmbeddedMachines"]),
        .testTarget(name: "IOMMUTests", dependencies: ["IOMMU", "PCIBus", "KernelRules", system]),
        // <linux/vfio.h> itself (linux-libc-dev), so tests drive the boundary with the kernel's structs.
        .target(name: "CLinuxVFIO", path: "Tests/CLinuxVFIO"),
        .testTarget(name: "VFIOTests", dependencies: ["VFIO", "IOMMU", "UserMemory", "KernelRules", "PCIBus", "Syscalls", "Machine", "CLinuxVFIO", "CMMIOTrap", system]),
        .testTarget(
            name: "DeviceModelTests",
            dependencies: [
                "DeviceModels", "Machine", "Locking", "SampleDrivers", "Syscalls", "VFIO", "IOMMU", "UserMemory", "KernelRules", "PCIBus", "CLinuxVFIO",
                system,
            ]),
        .testTarget(
            name: "VfiokitCLITests",
            dependencies: ["PCIBus", "vfiokit", "memcpy-driver", "nic-loopback-driver", "nvme-driver"]),
        // Every Swift snippet of README.md and docs/ compiles here and is checked to appear there.
        .testTarget(
            name: "DocSnippetTests",
            dependencies: ["KernelRules", "PCIBus", "IOMMU", "UserMemory", "IOMMUFD", "VFIO", "DeviceModels", "Machine", "Syscalls", "SampleDrivers", system]),
        // The arrows of the map above, checked on every import of Sources/ and devices/.
        .testTarget(name: "ModuleBoundaryTests"),
        // libFuzzer entry points, one per attack surface (see Fuzz/README.md); internal, no product.
        .target(name: "FuzzTargets", dependencies: ["KernelRules", "UserMemory", "PCIBus", "IOMMU", "VFIO", "DeviceModels", "Machine", "Syscalls", system]),
        // Replays every input of Fuzz/corpus through its target.
        .testTarget(name: "FuzzRegressionTests", dependencies: ["FuzzTargets", "DeviceModels", "Machine", "SampleDrivers", "VFIO", "PCIBus"]),
    ],
    swiftLanguageModes: [.v6]
)

// Every Swift module sees members only of the modules it imports (C targets take no Swift settings).
for target in package.targets where target.type != .system && !["CRCU", "CMMIOTrap", "CPreload", "CBenchSupport", "vfiokit-bench-client", "CLinuxVFIO"].contains(target.name) {
    target.swiftSettings = (target.swiftSettings ?? []) + importedMembersOnly
}

// `Fuzz/run preload-symbols` builds the preload library with the C half of the boundary
// instrumented for libFuzzer's coverage (the harness, built with -fsanitize=fuzzer, exports the
// callbacks): the fuzzer then sees which branches of the interposed symbols an input reaches.
if Context.environment["VFIOKIT_FUZZ_PRELOAD"] == "1", let preload = package.targets.first(where: { $0.name == "CPreload" }) {
    preload.cSettings = [.define("VFIOKIT_PRELOAD_COVERAGE"), .unsafeFlags(["-fsanitize=fuzzer-no-link", "-fno-sanitize-coverage=stack-depth"])]
}

// The libFuzzer driver exists only for fuzz builds (`Fuzz/run`): libFuzzer supplies `main`, so
// the executable links only with `--sanitize=fuzzer`, and a plain `swift build` must not see it.
if Context.environment["VFIOKIT_FUZZ"] == "1" {
    package.targets.append(.executableTarget(name: "vfiokit-fuzz", dependencies: ["FuzzTargets"], swiftSettings: importedMembersOnly))
}
