/* The kernel's own UAPI header, for tests that drive the VFIOKit facade exactly as C code
 * written against <linux/vfio.h> would. The request macros are function-like (_IO), which Swift
 * does not import, so each is re-exported as a constant function. */
#ifndef CLINUXVFIO_H
#define CLINUXVFIO_H
#include <linux/vfio.h>

static inline unsigned long clinuxvfio_get_api_version(void) { return VFIO_GET_API_VERSION; }
static inline unsigned long clinuxvfio_check_extension(void) { return VFIO_CHECK_EXTENSION; }
static inline unsigned long clinuxvfio_set_iommu(void) { return VFIO_SET_IOMMU; }
static inline unsigned long clinuxvfio_group_get_status(void) { return VFIO_GROUP_GET_STATUS; }
static inline unsigned long clinuxvfio_group_set_container(void) { return VFIO_GROUP_SET_CONTAINER; }
static inline unsigned long clinuxvfio_group_unset_container(void) { return VFIO_GROUP_UNSET_CONTAINER; }
static inline unsigned long clinuxvfio_group_get_device_fd(void) { return VFIO_GROUP_GET_DEVICE_FD; }
static inline unsigned long clinuxvfio_device_get_info(void) { return VFIO_DEVICE_GET_INFO; }
static inline unsigned long clinuxvfio_iommu_get_info(void) { return VFIO_IOMMU_GET_INFO; }
static inline unsigned long clinuxvfio_iommu_map_dma(void) { return VFIO_IOMMU_MAP_DMA; }
static inline unsigned long clinuxvfio_iommu_unmap_dma(void) { return VFIO_IOMMU_UNMAP_DMA; }
static inline unsigned long clinuxvfio_iommu_dirty_pages(void) { return VFIO_IOMMU_DIRTY_PAGES; }
static inline unsigned long clinuxvfio_device_get_region_info(void) { return VFIO_DEVICE_GET_REGION_INFO; }
static inline unsigned long clinuxvfio_device_get_irq_info(void) { return VFIO_DEVICE_GET_IRQ_INFO; }
static inline unsigned long clinuxvfio_device_set_irqs(void) { return VFIO_DEVICE_SET_IRQS; }
static inline unsigned long clinuxvfio_device_reset(void) { return VFIO_DEVICE_RESET; }
static inline unsigned long clinuxvfio_device_get_pci_hot_reset_info(void) { return VFIO_DEVICE_GET_PCI_HOT_RESET_INFO; }
static inline unsigned long clinuxvfio_device_pci_hot_reset(void) { return VFIO_DEVICE_PCI_HOT_RESET; }
static inline unsigned long clinuxvfio_device_ioeventfd(void) { return VFIO_DEVICE_IOEVENTFD; }
static inline unsigned long clinuxvfio_device_feature(void) { return VFIO_DEVICE_FEATURE; }
#endif
