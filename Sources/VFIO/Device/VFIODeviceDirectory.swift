import PCIBus

/// The PCI side of `/dev/vfio`: the function behind each VFIO device (`struct pci_dev`) and the
/// bus topology hot resets are scoped by. Built by whoever assembles the machine
/// (`DeviceModels.SimulatedMachine`); empty when the VFIO layer is used without devices.
public struct VFIODeviceDirectory: Sendable {
    public let backends: [PCIAddress: any PCIDeviceBackend]
    public let topology: PCITopology?
    /// vfio-pci's per-function driver data on this machine (shared by every copy of the directory).
    public let driverData = VFIOPCIDriverData()

    public init(backends: [PCIAddress: any PCIDeviceBackend] = [:], topology: PCITopology? = nil) {
        self.backends = backends
        self.topology = topology
    }

    /// The functions a secondary bus reset of `address`'s bus resets (`pci_walk_bus(pdev->bus)`,
    /// everything below the parent bridge), or nil when the bus cannot be reset: a root bus has
    /// no bridge to pulse its reset (`pci_probe_reset_bus` fails).
    func hotResetScope(of address: PCIAddress) -> [PCIAddress]? {
        guard let topology, let index = topology.index(of: address), let bridge = topology.parentBridge(of: index),
            let bus = topology.secondaryBus(of: bridge)
        else { return nil }
        var found: [PCIAddress] = []
        var stack = [bus]
        var seen = Set<PCIBusNode.Key>()
        while let next = stack.popLast(), seen.insert(next.key).inserted {
            for function in next.functions {
                found.append(topology.functions[function].address)
                if let below = topology.secondaryBus(of: function) { stack.append(below) }
            }
        }
        return found.sorted()
    }

    /// Where `address` sits, as the reset-method probe needs it (`pci_parent_bus_reset`: alone
    /// on a non-root bus below a bridge and not a bridge itself; `pci_is_root_bus` for the
    /// quirks). Without a topology: nothing above it, no bus reset.
    func resetPlacement(of address: PCIAddress) -> PCIResetPlacement {
        guard let topology, let index = topology.index(of: address) else { return .none }
        let alone =
            !topology.isOnRootBus(index) && topology.parentBridge(of: index) != nil && !topology.functions[index].isBridge
            && topology.bus(of: index).functions.count == 1
        return PCIResetPlacement(aloneBelowBridge: alone, onRootBus: topology.isOnRootBus(index))
    }
}
