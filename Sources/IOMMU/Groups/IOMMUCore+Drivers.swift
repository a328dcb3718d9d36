import KernelRules
import PCIBus
import SystemPackage

/// Driver binding through the PCI driver core (`pci_dma_configure` / `pci_dma_cleanup`): drivers
/// without `driver_managed_dma` use the default domain (OWN-01, OWN-02, OWN-08).
extension IOMMUCore {
    /// Binds `driver` to the function at `address` (`echo BDF > .../bind`).
    public func bind(driver: String, to address: PCIAddress) throws(IOMMUError) {
        try perform { (state) throws(IOMMUError) in try state.bind(driver: driver, to: address) }
    }

    /// Unbinds whatever driver the function has (`echo BDF > .../unbind`).
    public func unbindDriver(from address: PCIAddress) throws(IOMMUError) {
        try perform { (state) throws(IOMMUError) in try state.unbind(address) }
    }
}

extension IOMMUCore.State {
    mutating func bind(driver: String, to address: PCIAddress) throws(IOMMUError) {
        if let current = devices[address]?.driver ?? uncoveredDrivers[address] {
            throw IOMMUError(.resourceBusy, rule: .none, "bind \(driver) to \(address): already bound to \(current)")
        }
        guard let device = devices[address] else {
            // No group: `iommu_device_use_default_domain` returns 0.
            uncoveredDrivers[address] = driver
            return
        }
        if !KernelDriver.managesDMA(driver) {
            let group = groups[device.groupID]!
            guard group.defaultDomain != nil else {
                throw IOMMUError(.probeDefer, rule: .OWN_01, "bind \(driver) to \(address): group \(group.id) has no default domain yet")
            }
            if group.ownerCount != 0, group.domain != group.defaultDomain || group.owner != nil {
                throw IOMMUError(
                    .resourceBusy, rule: .OWN_08,
                    "bind \(driver) to \(address): group \(group.id) is not on its default domain (\(holders(of: group)))")
            }
            groups[device.groupID]!.ownerCount += 1
        }
        devices[address]!.driver = driver
    }

    mutating func unbind(_ address: PCIAddress) throws(IOMMUError) {
        guard let device = devices[address] else {
            guard uncoveredDrivers.removeValue(forKey: address) != nil else {
                throw IOMMUError(.operationNotSupportedByDevice, rule: .none, "unbind \(address): no driver is bound")
            }
            return
        }
        guard let driver = device.driver else {
            throw IOMMUError(.operationNotSupportedByDevice, rule: .none, "unbind \(address): no driver is bound")
        }
        if !KernelDriver.managesDMA(driver) { groups[device.groupID]!.ownerCount -= 1 }
        devices[address]!.driver = nil
    }
}
