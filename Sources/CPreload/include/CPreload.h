#ifndef VFIOKIT_CPRELOAD_H
#define VFIOKIT_CPRELOAD_H

// The C half of the preload library: the libc entry points a program calls, interposed. The
// Swift half (VFIOKitPreload) implements the simulation calls below and registers them.

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include "vfiokit.h"

#ifdef __cplusplus
extern "C" {
#endif

/// The simulation's entry points, called with the caller's errno convention (-1/errno, NULL).
struct vfiokit_simulation {
    /// Boots the machine from the start request; 0, or -1 with `error` filled.
    int (*start)(const char *machine, const char *const *bind, int count, char *root, size_t root_size, char *error, size_t error_size);
    int (*open)(const char *path, int flags);
    int (*ioctl)(int fd, unsigned long request, unsigned long argument);
    ssize_t (*pread)(int fd, void *buffer, size_t count, int64_t offset);
    ssize_t (*pwrite)(int fd, const void *buffer, size_t count, int64_t offset);
    void *(*mmap)(void *address, size_t length, int protection, int flags, int fd, int64_t offset);
    int (*munmap)(void *address, size_t length);
    /// The program placed a mapping of its own over `[address, address + length)` (MAP_FIXED).
    void (*placed)(void *address, size_t length);
    /// `already_closed`: the kernel closed the descriptor itself (dup2 over it).
    int (*close)(int fd, int already_closed);
    void (*duplicate)(int fd, int newfd);
};

/// Called once by the Swift half when the library loads.
void vfiokit_preload_register(const struct vfiokit_simulation *simulation);

/// Marks `fd` as referring (or no longer referring) to a simulated VFIO file.
void vfiokit_preload_mark(int fd, int is_vfio);

#ifdef __cplusplus
}
#endif

#endif
