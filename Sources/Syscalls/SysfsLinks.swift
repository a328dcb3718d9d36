import IOMMU
import KernelRules
import PCIBus
import SystemPackage
import VFIO

/// The links of `/sys/bus/pci/devices/<BDF>/` a userspace driver reads to find its device's
/// group and driver, as the kernel's sysfs shows them (`iommu_group` from
/// `iommu_group_add_device`, `driver` from the driver core).
extension VFIOSystem {
    /// `readlink(path)`: the link's target, or `ENOENT` naming what is missing (no such function,
    /// a function outside every IOMMU group, an unbound function's `driver`).
    public func readlink(_ path: String) -> Result<String, VFIOError> {
        let prefix = "/sys/bus/pci/devices/"
        let parts = path.hasPrefix(prefix) ? path.dropFirst(prefix.count).split(separator: "/", omittingEmptySubsequences: false) : []
        guard parts.count == 2, let address = PCIAddress(parsing: String(parts[0])), String(parts[0]) == address.description else {
            return .failure(VFIOError(.noSuchFileOrDirectory, rule: .none, "readlink \(path): not a link of the simulated sysfs"))
        }
        guard let device = core.device(address) else {
            let why = devices.topology?.index(of: address) == nil ? "no such PCI function" : "the function is in no IOMMU group"
            return .failure(VFIOError(.noSuchFileOrDirectory, rule: .IG_03, "readlink \(path): \(why)"))
        }
        switch parts[1] {
        case "iommu_group":
            return .success("../../../kernel/iommu_groups/\(device.groupID)")
        case "driver":
            guard let driver = device.driver else {
                return .failure(VFIOError(.noSuchFileOrDirectory, rule: .none, "readlink \(path): \(address) is bound to no driver"))
            }
            return .success("../../../bus/pci/drivers/\(driver)")
        default:
            return .failure(VFIOError(.noSuchFileOrDirectory, rule: .none, "readlink \(path): not a link of the simulated sysfs"))
        }
    }

    /// The IOMMU group number behind `/sys/bus/pci/devices/<BDF>/iommu_group`, the way drivers
    /// read it: the last component of the link.
    public func iommuGroup(of address: PCIAddress) -> Result<Int, VFIOError> {
        readlink("/sys/bus/pci/devices/\(address)/iommu_group").map { Int($0.split(separator: "/").last!)! }
    }
}

extension VFIOSystem {
    /// `readdir("/sys/kernel/iommu_groups/<N>/devices")` (IG-03, SYS-04): the group's devices, in
    /// the order they joined it; `ENOENT` for a group the machine does not have.
    public func iommuGroupDevices(_ id: Int) -> Result<[PCIAddress], VFIOError> {
        guard let group = core.group(id) else {
            return .failure(VFIOError(.noSuchFileOrDirectory, rule: .SYS_04, "/sys/kernel/iommu_groups/\(id)/devices: there is no IOMMU group \(id)"))
        }
        return .success(group.devices)
    }
}
