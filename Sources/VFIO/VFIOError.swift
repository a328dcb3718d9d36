import IOMMU
import IOMMUFD
import KernelRules
import PCIBus
import SystemPackage

/// VFIO (`drivers/vfio`: the group and container fds, type1, vfio-pci), as a source of errors.
public enum VFIOLayer: ErrorLayer {}

/// The VFIO layer's error: the errno the kernel's ioctl returns for the same call, the rule that
/// decides it (`T1-17`, `VG-10`, `VPCI-…`), and a message naming the container, group or range.
/// An IOMMU-layer failure surfacing through VFIO keeps its errno and rule (`VFIOError(iommuError)`).
public typealias VFIOError = SimulationError<VFIOLayer>

/// Runs a lower layer's call (the IOMMU core, user memory, iommufd), surfacing its failure as a
/// `VFIOError` with the same errno, rule and message, the original kept as the cause.
package func iommuCall<Lower: ErrorLayer, Result>(_ body: () throws(SimulationError<Lower>) -> Result) throws(VFIOError) -> Result {
    do {
        return try body()
    } catch {
        throw VFIOError(error)
    }
}

