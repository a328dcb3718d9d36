// swift-tools-version: 6.1
import PackageDescription

let package = Package(
    name: "VFIOKit",
    products: [
        // One library per layer, plus the umbrella, so a userspace driver links what it needs.
        .library(name: "PCIBus", targets: ["PCIBus"]),
        .library(name: "IOMMU", targets: ["IOMMU"]),
        .library(name: "VFIO", targets: ["VFIO"]),
        .library(name: "DeviceModels", targets: ["DeviceModels"]),
        .library(name: "SampleDrivers", targets: ["SampleDrivers"]),
        .library(name: "VFIOKit", targets: ["VFIOKit"]),
        .executable(name: "vfiokit", targets: ["vfiokit"]),
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
        // What the UAPI facade needs from C to copy from and to user memory: process_vm_readv/writev.
        .target(name: "CUserCopy"),
        .target(
            name: "PCIBus",
            dependencies: [
                "CPciAccess",
                "Locking",
                .product(name: "SystemPackage", package: "swift-system"),
            ]
        ),
        .target(
            name: "IOMMU",
            dependencies: ["PCIBus", "Locking", "CRCU", .product(name: "SystemPackage", package: "swift-system")]
        ),
        .target(
            name: "VFIO",
            dependencies: ["PCIBus", "IOMMU", "Locking", "CUserCopy", .product(name: "SystemPackage", package: "swift-system")]
        ),
        .target(name: "DeviceModels", dependencies: ["PCIBus", "IOMMU", "VFIO", "Locking", .product(name: "SystemPackage", package: "swift-system")]),
        // Userspace drivers use only the public VFIO API, as a real driver would.
        .target(name: "SampleDrivers", dependencies: ["PCIBus", "VFIO"]),
        .target(name: "VFIOKit", dependencies: ["PCIBus", "IOMMU", "VFIO", "DeviceModels"]),
        .executableTarget(
            name: "vfiokit",
            dependencies: [
                "PCIBus",
                "IOMMU",
                "VFIO",
                "DeviceModels",
                "SampleDrivers",
                "Locking",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ]
        ),
        // Sample userspace drivers, one executable each.
        .executableTarget(name: "memcpy-driver", dependencies: ["DeviceModels", "SampleDrivers", "PCIBus", "VFIO"], path: "Sources/Samples/memcpy-driver"),
        .executableTarget(name: "nic-loopback-driver", dependencies: ["DeviceModels", "SampleDrivers", "PCIBus", "VFIO"], path: "Sources/Samples/nic-loopback-driver"),
        .executableTarget(name: "nvme-driver", dependencies: ["DeviceModels", "SampleDrivers", "PCIBus", "VFIO"], path: "Sources/Samples/nvme-driver"),
        .testTarget(name: "PCIBusTests", dependencies: ["PCIBus"]),
        .testTarget(name: "IOMMUTests", dependencies: ["IOMMU", .product(name: "SystemPackage", package: "swift-system")]),
        // <linux/vfio.h> itself (linux-libc-dev), so tests drive the facade with the kernel's structs.
        .target(name: "CLinuxVFIO", path: "Tests/CLinuxVFIO"),
        .testTarget(name: "VFIOTests", dependencies: ["VFIO", "CLinuxVFIO", .product(name: "SystemPackage", package: "swift-system")]),
        .testTarget(name: "DeviceModelTests", dependencies: ["DeviceModels", "Locking", "SampleDrivers", "VFIO", "IOMMU", "PCIBus", "CLinuxVFIO", .product(name: "SystemPackage", package: "swift-system")]),
        .testTarget(name: "VfiokitCLITests", dependencies: ["PCIBus"]),
        // libFuzzer entry points, one per attack surface (see Fuzz/README.md); internal, no product.
        .target(name: "FuzzTargets", dependencies: ["PCIBus", "IOMMU", "VFIO", "DeviceModels"]),
        // Replays every input of Fuzz/corpus through its target.
        .testTarget(name: "FuzzRegressionTests", dependencies: ["FuzzTargets", "DeviceModels", "SampleDrivers", "VFIO", "PCIBus"]),
    ],
    swiftLanguageModes: [.v6]
)

// The libFuzzer driver exists only for fuzz builds (`Fuzz/run`): libFuzzer supplies `main`, so
// the executable links only with `--sanitize=fuzzer`, and a plain `swift build` must not see it.
if Context.environment["VFIOKIT_FUZZ"] == "1" {
    package.targets.append(.executableTarget(name: "vfiokit-fuzz", dependencies: ["FuzzTargets"]))
}
