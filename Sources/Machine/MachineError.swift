import DeviceModels
import IOMMU
import KernelRules
import PCIBus
import VFIO

/// Assembling a simulated machine (a topology, its IOMMU, vfio-pci and the models), as a source of errors.
public enum MachineLayer: ErrorLayer {}

/// The machine layer's error: what could not be assembled and why, with the lower layer's error
/// (a `PCIBusError` for a bad dump, an `IOMMUError`, a `DeviceModelError`) kept as its `cause`.
public typealias MachineError = SimulationError<MachineLayer>
