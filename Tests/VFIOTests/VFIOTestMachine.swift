import KernelRules
import IOMMU
import Foundation
import PCIBus
import SystemPackage

@testable import VFIO
import UserMemory

/// `devices/default` loaded into an IOMMU core and `/dev/vfio`, as the VFIO tests use it. Groups
/// 22 (0000:3c:00.1) and 27 (0000:5e:00.0) are bound to vfio-pci in the manifest; `vfio` rebinds
/// more functions to vfio-pci first.
enum VFIOTestMachine {
    static let devicesDirectory = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent().appendingPathComponent("devices").path

    static func core(_ name: String = "default", profile: PlatformProfile? = nil, vfio: [String] = []) throws -> IOMMUCore {
        let snapshot = try BusSnapshot.load(.machine(FixtureMachine.load(directory: devicesDirectory + "/" + name)))
        var configuration = try IOMMUConfiguration.of(snapshot)!
        if let profile { configuration.profile = profile }
        let core = try IOMMUCore(snapshot: snapshot, configuration: configuration)
        for text in vfio {
            let address = PCIAddress(parsing: text)!
            if core.device(address)?.driver != nil { try core.unbindDriver(from: address) }
            try core.bind(driver: "vfio-pci", to: address)
        }
        return core
    }

    static func system(profile: PlatformProfile? = nil, vfio: [String] = [], process: ProcessMemory = ProcessMemory()) throws -> VFIOSystem {
        VFIOSystem(core: try core(profile: profile, vfio: vfio), process: process)
    }

    /// A type1 (or type1v2) container holding the given groups, IOMMU set, with `memory` bytes of
    /// host memory to map from.
    struct Setup {
        let system: VFIOSystem
        let container: VFIOContainer
        let groups: [VFIOGroup]
        let memory: HostMemory
    }

    static func setup(
        groups ids: [Int] = [27], type: VFIOExtension = .type1v2, profile: PlatformProfile? = nil, vfio: [String] = [],
        options: VFIOContainerOptions = VFIOContainerOptions(), memory size: UInt64 = 1 << 20, hugePages: Bool = false
    ) throws -> Setup {
        let system = try system(profile: profile, vfio: vfio)
        let container = VFIOContainer(process: system.process, options: options)
        var groups: [VFIOGroup] = []
        for id in ids {
            let group = try system.openGroup(id)
            try group.setContainer(container)
            groups.append(group)
        }
        try container.setIOMMU(type)
        let memory = try system.process.allocate(size: size, hugePages: hugePages)
        return Setup(system: system, container: container, groups: groups, memory: memory)
    }
}

/// The errno a throwing call failed with, nil on success.
func errnoOf<Layer: ErrorLayer>(_ body: () throws(SimulationError<Layer>) -> Void) -> Errno? {
    do {
        try body()
        return nil
    } catch {
        return error.errno
    }
}
