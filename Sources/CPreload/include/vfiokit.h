#ifndef VFIOKIT_H
#define VFIOKIT_H

// VFIOKit's preload library, for C programs that start the simulated machine themselves rather
// than under `vfiokit run`. Link with -lvfiokit-preload (or LD_PRELOAD it); after vfiokit_start the
// program's open/ioctl/pread/pwrite/mmap/close on /dev/vfio and its reads of /sys/bus/pci,
// /sys/kernel/iommu_groups and /sys/module/vfio* reach the simulation, as under `vfiokit run`.

#ifdef __cplusplus
extern "C" {
#endif

/// Starts the simulation once per process: `machine` is a devices/ machine name or directory
/// (NULL: $VFIOKIT_MACHINE, else "default"); `bind` lists `count` functions ("0000:00:04.0") to
/// bind to vfio-pci. 0 when it runs (a second call changes nothing and returns 0), else -1 with
/// errno set and the reason in vfiokit_error().
int vfiokit_start(const char *machine, const char *const *bind, int count);

/// Why the last vfiokit_start failed ("" when it did not).
const char *vfiokit_error(void);

#ifdef __cplusplus
}
#endif

#endif
