import SystemPackage
import UserMemory
import DeviceModels
import Foundation
import IOMMU
import KernelRules
import PCIBus
import VFIO

extension SimulatedMachine {
    /// A virtual device a manifest or a caller asks for.
    public struct VirtualDeviceRequest: Sendable, Codable, Equatable {
        public let address: PCIAddress
        public let model: String
        /// The driver to bind (default vfio-pci).
        public let driver: String?

        public init(address: PCIAddress, model: String, driver: String? = nil) {
            self.address = address
            self.model = model
            self.driver = driver
        }
    }

    /// The manifest key this layer reads: `"virtualDevices": [{"address": …, "model": …}]`.
    private struct Manifest: Decodable {
        let virtualDevices: [VirtualDeviceRequest]?
    }

    /// Loads a `devices/` machine (a name or a directory) with the virtual devices its manifest
    /// declares, plus `attaching` (which replaces a declared one at the same address).
    public static func load(
        machine nameOrPath: String, attaching extra: [VirtualDeviceRequest] = [], platform: IOMMUPlatformKind? = nil,
        acsPolicy: ACSEnablePolicy = .bootEnable, profileName: String? = nil, lookUpNames: Bool = false,
        binding: [PCIAddress] = [], process: ProcessMemory = ProcessMemory()
    ) throws(MachineError) -> SimulatedMachine {
        let fixture: FixtureMachine
        do throws(PCIBusError) {
            fixture = try FixtureMachine.load(directory: try FixtureMachine.locate(nameOrPath))
        } catch {
            throw MachineError(error.errno, rule: .none, error.message, cause: error)
        }
        let declared = try declaredDevices(of: fixture).filter { request in !extra.contains { $0.address == request.address } }
        return try build(
            .machine(fixture), requests: declared + extra, platform: platform, acsPolicy: acsPolicy, profileName: profileName,
            lookUpNames: lookUpNames, binding: binding, process: process)
    }

    /// Loads an `lspci -xxxx` dump with virtual devices attached (drivers: only theirs are known).
    public static func load(
        dump path: String, attaching requests: [VirtualDeviceRequest], platform: IOMMUPlatformKind? = nil,
        acsPolicy: ACSEnablePolicy = .bootEnable, profileName: String? = nil, lookUpNames: Bool = false,
        binding: [PCIAddress] = [], process: ProcessMemory = ProcessMemory()
    ) throws(MachineError) -> SimulatedMachine {
        try build(
            .dump(path: path), requests: requests, platform: platform, acsPolicy: acsPolicy, profileName: profileName,
            lookUpNames: lookUpNames, binding: binding, process: process)
    }

    /// The virtual devices `fixture`'s manifest declares (`"virtualDevices"`; none without the key).
    public static func declaredDevices(of fixture: FixtureMachine) throws(MachineError) -> [VirtualDeviceRequest] {
        do {
            return try JSONDecoder().decode(Manifest.self, from: fixture.manifestData).virtualDevices ?? []
        } catch {
            throw MachineError(.invalidArgument, rule: .none, "\(fixture.directory)/manifest.json: virtualDevices: \(error)", cause: error)
        }
    }

    /// `base` with the models `requests` name attached (`ModelCatalog`, each with its own MMIO
    /// window), bound to each request's driver, else vfio-pci; the functions in `binding` (base or
    /// virtual) are bound to vfio-pci whatever else says (`driverctl set-override BDF vfio-pci`):
    /// `ENODEV` for one the machine does not have.
    public convenience init(
        base: BusSnapshot, requests: [VirtualDeviceRequest], profileName: String? = nil, binding: [PCIAddress] = [],
        process: ProcessMemory = ProcessMemory()
    ) throws(MachineError) {
        var devices: [VirtualPCIDevice] = []
        var drivers: [PCIAddress: String] = [:]
        for (n, request) in requests.enumerated() {
            do throws(DeviceModelError) {
                devices.append(try ModelCatalog.make(request.model, at: request.address, mmioBase: ModelCatalog.mmioBase(forDevice: n)))
            } catch {
                throw MachineError(error)
            }
            if let driver = request.driver { drivers[request.address] = driver }
        }
        for address in binding {
            guard base.topology.index(of: address) != nil || requests.contains(where: { $0.address == address }) else {
                throw MachineError(.operationNotSupportedByDevice, rule: .none, "bind \(address) to vfio-pci: the machine has no such PCI function")
            }
            drivers[address] = "vfio-pci"
        }
        try self.init(base: base, devices: devices, drivers: drivers, profileName: profileName, process: process)
    }

    /// Loads the PCI functions under a sysfs root (`/sys`, or a copy laid out like it), with their
    /// drivers, and `binding` bound to vfio-pci.
    public static func load(
        sysfs root: String, binding: [PCIAddress] = [], profileName: String? = nil, process: ProcessMemory = ProcessMemory()
    ) throws(MachineError) -> SimulatedMachine {
        try build(
            .host(sysfsPath: root), requests: [], platform: nil, acsPolicy: .bootEnable, profileName: profileName, lookUpNames: false,
            binding: binding, process: process)
    }

    private static func build(
        _ origin: BusSnapshot.Origin, requests: [VirtualDeviceRequest], platform: IOMMUPlatformKind?, acsPolicy: ACSEnablePolicy,
        profileName: String?, lookUpNames: Bool, binding: [PCIAddress], process: ProcessMemory
    ) throws(MachineError) -> SimulatedMachine {
        let base: BusSnapshot
        do throws(PCIBusError) {
            base = try BusSnapshot.load(origin, platform: platform, acsPolicy: acsPolicy, options: .init(lookUpNames: lookUpNames))
        } catch {
            throw MachineError(error.errno, rule: .none, error.message, cause: error)
        }
        return try SimulatedMachine(base: base, requests: requests, profileName: profileName, binding: binding, process: process)
    }
}
