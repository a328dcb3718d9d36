import SystemPackage
import UserMemory
import DeviceModels
import Foundation
import IOMMU
import KernelRules
import PCIBus
import VFIO

/// A machine to run drivers against: a topology (a `devices/` machine or a dump), its IOMMU
/// (platform profile, groups, domains), the process memory devices may reach, and virtual PCI
/// devices attached at bus addresses — replacing a dumped function or filling an empty slot.
/// Their config space is part of the topology, so grouping, reports and `vfiokit` see them like
/// any other function; each is bound to vfio-pci unless told otherwise. Every function a VFIO
/// driver can open has a backend: its model, or the dump's config space for real functions.
public final class SimulatedMachine: Sendable {
    public let snapshot: BusSnapshot
    /// The IOMMU core: the kernel side only (tests, reports); users read the kernel log instead.
    package let core: IOMMUCore
    public let vfio: VFIOSystem
    /// The simulated process: the host memory drivers allocate and devices may reach.
    public var process: ProcessMemory { vfio.process }
    /// The virtual devices, by address.
    public let devices: [PCIAddress: VirtualPCIDevice]

    /// Builds the machine: `base`'s functions with `devices` added (replacing any function at
    /// the same address), grouped with `base`'s platform and ACS policy, then the IOMMU core
    /// with the configuration the source implies (`profileName` overrides the profile).
    /// Virtual devices are bound to `drivers[address]`, else vfio-pci; a base function named in
    /// `drivers` is rebound to that driver (`driverctl set-override`).
    public init(
        base: BusSnapshot, devices: [VirtualPCIDevice], drivers overrides: [PCIAddress: String] = [:], profileName: String? = nil,
        process: ProcessMemory = ProcessMemory()
    ) throws(MachineError) {
        let virtual = Dictionary(devices.map { ($0.address, $0) }, uniquingKeysWith: { first, _ in first })
        guard virtual.count == devices.count else {
            throw MachineError(.invalidArgument, rule: .none, "two virtual devices at the same address")
        }
        var functions = base.topology.functions.filter { virtual[$0.address] == nil }.map { function -> PCIFunction in
            var function = function
            if let driver = overrides[function.address] { function.driver = driver }
            return function
        }
        var models = devices.map { device in
            var function = PCIFunction(address: device.address, config: PCIConfigSpace(bytes: device.configSpace.bytes))
            function.driver = overrides[device.address] ?? "vfio-pci"
            function.virtualModel = device.modelName
            return function
        }
        // Named by their IDs as lspci names them on such a machine; the model says what they are.
        let names = PCINames.lookUp(models)
        for index in models.indices {
            models[index].names = names?[index] ?? PCINames(vendor: "VFIOKit", device: models[index].virtualModel)
        }
        functions += models
        let topology = PCITopology(functions: functions, source: base.topology.source, capabilityIssues: base.topology.capabilityIssues)
        for device in devices {
            let index = topology.index(of: device.address)!
            let key = PCIBusNode.Key(domain: device.address.domain, number: device.address.bus)
            guard !topology.isOnRootBus(index) || base.topology.rootBuses.contains(key) else {
                throw MachineError(
                    .invalidArgument, rule: .none,
                    "cannot attach \(device) : no bridge leads to bus \(String(format: "%02x", device.address.bus)) and it is not a root bus of the machine")
            }
        }
        let grouping = base.grouping
        snapshot = BusSnapshot(
            origin: base.origin, topology: topology, driversKnown: true,
            configuration: .init(platform: grouping.platform, acsPolicy: grouping.acsPolicy, platformOrigin: grouping.platformReason))
        do throws(IOMMUError) {
            guard let configuration = try IOMMUConfiguration.of(snapshot, profileName: profileName), snapshot.grouping.unavailableReason == nil
            else {
                throw IOMMUError(
                    .operationNotSupportedByDevice, rule: .none,
                    "the \(grouping.platform) platform has no IOMMU model, so devices cannot be isolated")
            }
            core = try IOMMUCore(snapshot: snapshot, configuration: configuration)
        } catch {
            throw MachineError(error)
        }
        var backends: [PCIAddress: any PCIDeviceBackend] = virtual
        for function in topology.functions where virtual[function.address] == nil && function.driver.map(KernelDriver.isVFIO) == true {
            backends[function.address] = DumpedFunction(function)
        }
        vfio = VFIOSystem(core: core, process: process, devices: VFIODeviceDirectory(backends: backends, topology: topology))
        self.devices = virtual
        for device in devices { device.attach(busAttachment(for: device)) }
    }

    /// How `device` reaches memory: its requester ID after aliasing and the peers' BARs it
    /// reaches directly where a switch port on its way up does not redirect (`PeerToPeerRoute`).
    private func busAttachment(for device: VirtualPCIDevice) -> VirtualPCIDevice.BusAttachment {
        let grouping = snapshot.grouping
        var windows: [DMAPort.PeerWindow] = []
        for route in grouping.peerToPeerRoutes(from: device.address) {
            for peer in route.peers {
                guard let model = devices[peer] else { continue }
                for index in 0..<6 {
                    guard let bar = model.barResource(index), bar.kind != .io else { continue }
                    windows.append(
                        DMAPort.PeerWindow(
                            start: bar.busAddress, end: bar.busAddress + bar.size, peer: peer, memory: model.barMemory(index), owner: model))
                }
            }
        }
        return VirtualPCIDevice.BusAttachment(
            core: core, requesterID: grouping.requesterID(of: device.address) ?? device.address.requesterID, process: process,
            peers: windows)
    }

    /// The IOMMU group a function is in.
    public func groupID(of address: PCIAddress) -> Int? { core.device(address)?.groupID }

    /// The IOMMU's DMA fault lines as `dmesg` shows them (DMAR faults): the last `limit` the
    /// fault log holds, oldest first. The core's own warnings are `IOMMUCore.kernelLog`.
    public func faultLog(last limit: Int) -> [String] { core.faults.recent.suffix(limit).map(\.description) }

    /// Every IOMMU fault recorded so far (the next fault's sequence number).
    public var faultCount: UInt64 { core.faults.counters.total }

    /// The faults recorded since the count stood at `count`, that the bounded log still holds.
    public func faults(since count: UInt64) -> [IOMMUFault] { core.faults.recent.filter { $0.sequence >= count } }
}
