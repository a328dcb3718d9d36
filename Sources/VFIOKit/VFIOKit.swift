/// The umbrella module: `import VFIOKit` brings in every layer of the framework.
@_exported import PCIBus
@_exported import IOMMU
@_exported import VFIO
@_exported import DeviceModels
