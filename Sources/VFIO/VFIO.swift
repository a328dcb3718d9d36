/// The VFIO layer: the type1 IOMMU backend's pieces (`drivers/vfio/vfio_iommu_type1.c`) that
/// `VFIOContainer` is built from. See `Type1/`.
@_exported import IOMMU
