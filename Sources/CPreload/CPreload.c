// The preload library's C half: every libc entry a program reaches VFIO and sysfs through,
// interposed (LD_PRELOAD puts these definitions first), and handed to the simulation (the Swift
// half) when they name a simulated path or descriptor; everything else goes to the next
// definition, libc's, untouched. Calls the simulation itself makes pass straight through.
#define _GNU_SOURCE
#include "CPreload.h"

#include <dirent.h>
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/uio.h>
#include <unistd.h>

#include <CMMIOTrap.h>

// The interposers run before a sanitizer's runtime has initialised (it calls sigaction while it
// starts) and inside its own interceptors: like a sanitizer runtime itself, this file is not
// instrumented. The simulation it hands calls to is. The one exception is libFuzzer's coverage
// (VFIOKIT_PRELOAD_COVERAGE, set by `Fuzz/run preload-symbols`): counters only, no runtime.
#if defined(__clang__) && !defined(VFIOKIT_PRELOAD_COVERAGE)
#pragma clang attribute push(__attribute__((disable_sanitizer_instrumentation)), apply_to = function)
#endif

// ---------------------------------------------------------------- libc's own definitions

#define REAL(name) real_##name
#define DECLARE_REAL(ret, name, ...) static ret (*real_##name)(__VA_ARGS__)
DECLARE_REAL(int, open, const char *, int, ...);
DECLARE_REAL(int, open64, const char *, int, ...);
DECLARE_REAL(int, openat, int, const char *, int, ...);
DECLARE_REAL(int, openat64, int, const char *, int, ...);
DECLARE_REAL(int, __open_2, const char *, int);
DECLARE_REAL(int, __open64_2, const char *, int);
DECLARE_REAL(int, __openat_2, int, const char *, int);
DECLARE_REAL(FILE *, fopen, const char *, const char *);
DECLARE_REAL(FILE *, fopen64, const char *, const char *);
DECLARE_REAL(DIR *, opendir, const char *);
DECLARE_REAL(ssize_t, readlink, const char *, char *, size_t);
DECLARE_REAL(ssize_t, readlinkat, int, const char *, char *, size_t);
DECLARE_REAL(int, stat, const char *, struct stat *);
DECLARE_REAL(int, lstat, const char *, struct stat *);
DECLARE_REAL(int, stat64, const char *, struct stat64 *);
DECLARE_REAL(int, lstat64, const char *, struct stat64 *);
DECLARE_REAL(int, fstatat, int, const char *, struct stat *, int);
DECLARE_REAL(int, fstatat64, int, const char *, struct stat64 *, int);
DECLARE_REAL(int, fstat, int, struct stat *);
DECLARE_REAL(int, statx, int, const char *, int, unsigned int, struct statx *);
DECLARE_REAL(int, __xstat, int, const char *, struct stat *);
DECLARE_REAL(int, __lxstat, int, const char *, struct stat *);
DECLARE_REAL(int, __xstat64, int, const char *, struct stat64 *);
DECLARE_REAL(int, __lxstat64, int, const char *, struct stat64 *);
DECLARE_REAL(int, __fxstatat, int, int, const char *, struct stat *, int);
DECLARE_REAL(int, __fxstatat64, int, int, const char *, struct stat64 *, int);
DECLARE_REAL(int, fstat64, int, struct stat64 *);
DECLARE_REAL(int, access, const char *, int);
DECLARE_REAL(int, faccessat, int, const char *, int, int);
DECLARE_REAL(char *, realpath, const char *, char *);
DECLARE_REAL(int, close, int);
DECLARE_REAL(int, dup, int);
DECLARE_REAL(int, dup2, int, int);
DECLARE_REAL(int, dup3, int, int, int);
DECLARE_REAL(int, fcntl, int, int, ...);
DECLARE_REAL(int, fcntl64, int, int, ...);
DECLARE_REAL(int, ioctl, int, unsigned long, ...);
DECLARE_REAL(ssize_t, pread, int, void *, size_t, off_t);
DECLARE_REAL(ssize_t, pread64, int, void *, size_t, off64_t);
DECLARE_REAL(ssize_t, pwrite, int, const void *, size_t, off_t);
DECLARE_REAL(ssize_t, pwrite64, int, const void *, size_t, off64_t);
DECLARE_REAL(ssize_t, preadv, int, const struct iovec *, int, off_t);
DECLARE_REAL(ssize_t, pwritev, int, const struct iovec *, int, off_t);
DECLARE_REAL(void *, mmap, void *, size_t, int, int, int, off_t);
DECLARE_REAL(void *, mmap64, void *, size_t, int, int, int, off64_t);
DECLARE_REAL(int, munmap, void *, size_t);
DECLARE_REAL(int, sigaction, int, const struct sigaction *, struct sigaction *);
DECLARE_REAL(sighandler_t, signal, int, sighandler_t);

static void resolve_real(void) {
#define RESOLVE(name) real_##name = dlsym(RTLD_NEXT, #name)
    RESOLVE(open); RESOLVE(open64); RESOLVE(openat); RESOLVE(openat64); RESOLVE(__open_2); RESOLVE(__open64_2);
    RESOLVE(__openat_2); RESOLVE(fopen); RESOLVE(fopen64); RESOLVE(opendir); RESOLVE(readlink); RESOLVE(readlinkat);
    RESOLVE(stat); RESOLVE(lstat); RESOLVE(stat64); RESOLVE(lstat64); RESOLVE(fstatat); RESOLVE(fstatat64);
    RESOLVE(fstat); RESOLVE(fstat64); RESOLVE(statx); RESOLVE(__xstat); RESOLVE(__lxstat); RESOLVE(__xstat64);
    RESOLVE(__lxstat64); RESOLVE(__fxstatat); RESOLVE(__fxstatat64); RESOLVE(access); RESOLVE(faccessat); RESOLVE(realpath); RESOLVE(close);
    RESOLVE(dup); RESOLVE(dup2); RESOLVE(dup3); RESOLVE(fcntl); RESOLVE(fcntl64); RESOLVE(ioctl); RESOLVE(pread);
    RESOLVE(pread64); RESOLVE(pwrite); RESOLVE(pwrite64); RESOLVE(preadv); RESOLVE(pwritev); RESOLVE(mmap);
    RESOLVE(mmap64); RESOLVE(munmap); RESOLVE(sigaction); RESOLVE(signal);
#undef RESOLVE
}

// Resolved on first need, with no lock: a sanitizer's runtime calls in here (sigaction) while it
// initialises, before any interceptor (pthread_once's included) may run; racing threads store
// the same pointers.
#define NEED(name) (real_##name ? real_##name : (resolve_real(), real_##name))

// ---------------------------------------------------------------- the simulation

extern const struct vfiokit_simulation *vfiokit_preload_simulation(void);

static const struct vfiokit_simulation *sim;
static int started;
static char root[PATH_MAX];
static size_t root_length;
static char start_error[512];
static pid_t creator;
static pthread_mutex_t start_lock = PTHREAD_MUTEX_INITIALIZER;
// Held shared by every call into the simulation and exclusively across fork(), so a child never
// inherits the simulation's state halfway through a call.
static pthread_rwlock_t sim_lock;
// Set while this thread runs simulation code: its own libc calls go straight to libc.
static __thread int inside __attribute__((tls_model("initial-exec")));

static void enter(void) { pthread_rwlock_rdlock(&sim_lock); inside = 1; }
static void leave(void) { inside = 0; pthread_rwlock_unlock(&sim_lock); }

// Which descriptors are simulated VFIO files: one byte per descriptor up to RLIMIT_NOFILE's max.
static unsigned char *vfio_fds;
static size_t vfio_fd_limit;

void vfiokit_preload_mark(int fd, int is_vfio) {
    if (fd >= 0 && (size_t)fd < vfio_fd_limit) __atomic_store_n(&vfio_fds[fd], (unsigned char)(is_vfio != 0), __ATOMIC_RELEASE);
}

static int is_vfio(int fd) {
    return started && fd >= 0 && (size_t)fd < vfio_fd_limit && __atomic_load_n(&vfio_fds[fd], __ATOMIC_ACQUIRE) && !inside;
}

static int remove_entry(const char *path, const struct stat *st, int type, struct FTW *ftw) {
    (void)st; (void)type; (void)ftw;
    return remove(path);
}

static void remove_tree(void) {
    if (started && getpid() == creator && root_length) nftw(root, remove_entry, 16, FTW_DEPTH | FTW_PHYS);
}

static void before_fork(void) { pthread_rwlock_wrlock(&sim_lock); }
static void after_fork(void) { pthread_rwlock_unlock(&sim_lock); }
static void in_child(void) {
    pthread_rwlockattr_t attr;
    pthread_rwlockattr_init(&attr);
    pthread_rwlockattr_setkind_np(&attr, PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP);
    pthread_rwlock_init(&sim_lock, &attr);
}



int vfiokit_start(const char *machine, const char *const *bind, int count) {
    pthread_mutex_lock(&start_lock);
    int result = 0;
    if (!started) {
        struct rlimit limit;
        vfio_fd_limit = getrlimit(RLIMIT_NOFILE, &limit) == 0 && limit.rlim_max != RLIM_INFINITY && limit.rlim_max < (1u << 24) ? limit.rlim_max : (1u << 20);
        vfio_fds = NEED(mmap)(NULL, vfio_fd_limit, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
        sim = vfiokit_preload_simulation();
        inside = 1;
        result = vfio_fds == MAP_FAILED ? -1 : sim->start(machine, bind, count, root, sizeof(root), start_error, sizeof(start_error));
        inside = 0;
        if (result == 0) {
            root_length = strlen(root);
            creator = getpid();
            __atomic_store_n(&started, 1, __ATOMIC_RELEASE);
            atexit(remove_tree);
        } else if (vfio_fds == MAP_FAILED) {
            snprintf(start_error, sizeof(start_error), "no memory for the descriptor table");
        }
    }
    pthread_mutex_unlock(&start_lock);
    if (result != 0) errno = EINVAL;
    return result;
}

const char *vfiokit_error(void) { return start_error; }

// Under `vfiokit run` the environment names the machine: started on first use of a simulated path.
static void start_from_environment(void) {
    const char *machine = getenv("VFIOKIT_MACHINE");
    if (!machine) return;
    const char *binds = getenv("VFIOKIT_BIND");
    char copy[4096];
    const char *list[64];
    int count = 0;
    if (binds) {
        snprintf(copy, sizeof(copy), "%s", binds);
        for (char *save = NULL, *word = strtok_r(copy, ",", &save); word && count < 64; word = strtok_r(NULL, ",", &save)) list[count++] = word;
    }
    if (vfiokit_start(machine, list, count) != 0) {
        fprintf(stderr, "vfiokit: the simulated machine did not start: %s\n", start_error);
        _exit(70);  // EX_SOFTWARE: the program would otherwise see the host's real, empty /dev/vfio
    }
}

static pthread_once_t environment_once = PTHREAD_ONCE_INIT;
static int ensure_started(void) {
    if (!__atomic_load_n(&started, __ATOMIC_ACQUIRE)) pthread_once(&environment_once, start_from_environment);
    return __atomic_load_n(&started, __ATOMIC_ACQUIRE);
}

// Under `vfiokit run` the machine is up before the program's main, as a kernel is: a program that
// forks (the kselftest harness forks twice per test) hands every child the machine it booted,
// rather than each child booting its own.
__attribute__((constructor)) static void set_up(void) {
    resolve_real();
    in_child();
    pthread_atfork(before_fork, after_fork, in_child);
    if (getenv("VFIOKIT_MACHINE")) ensure_started();
}

// ---------------------------------------------------------------- paths

// The simulated parts of /sys and /dev: a path is simulated when it starts with a prefix and the
// prefix ends a component (or, for the open-ended ones, anywhere: pci0000:00, vfio_pci).
static const struct { const char *prefix; int open_ended; } simulated[] = {
    {"/sys/bus/pci", 0}, {"/sys/devices/pci", 1}, {"/sys/kernel/iommu_groups", 0}, {"/sys/module/vfio", 1},
    {"/sys/module/iommufd", 0}, {"/dev/vfio", 0}, {"/dev/iommu", 0},
};

// A path argument the interposers may look at: readable up to a NUL within PATH_MAX, as
// strncpy_from_user would find it. Any other (NULL, unmapped, PROT_NONE, unterminated) goes to
// libc's call untouched, and the kernel answers it: EFAULT or ENAMETOOLONG, never a SIGSEGV in
// this library.
static int readable_path(const char *path) {
    size_t faulted;
    long length = path ? vfiokit_user_strnlen((uintptr_t)path, PATH_MAX, &faulted) : -1;
    return length >= 0 && length < PATH_MAX;
}

static int is_simulated(const char *path) {
    for (size_t i = 0; i < sizeof(simulated) / sizeof(*simulated); i++) {
        size_t n = strlen(simulated[i].prefix);
        if (strncmp(path, simulated[i].prefix, n) == 0 && (simulated[i].open_ended || path[n] == 0 || path[n] == '/')) return 1;
    }
    return 0;
}

// The path the simulation answers for `path` (in `buffer`), or `path` itself.
static const char *redirect(const char *path, char *buffer) {
    if (inside || !readable_path(path) || path[0] != '/') return path;
    if (!is_simulated(path) || !ensure_started()) return path;
    if (snprintf(buffer, PATH_MAX, "%s%s", root, path) >= PATH_MAX) return path;
    return buffer;
}

// A non-empty run of digits and nothing after it.
static int is_number(const char *text) {
    if (!*text) return 0;
    for (const char *c = text; *c; c++) if (*c < '0' || *c > '9') return 0;
    return 1;
}

// The device nodes the simulation opens itself: `/dev/vfio/vfio`, `/dev/vfio/N`,
// `/dev/vfio/devices/vfioN` and `/dev/iommu` (0 for any other path).
enum node_kind { NOT_A_NODE, CONTAINER_NODE, GROUP_NODE, CDEV_NODE, IOMMUFD_NODE };

static enum node_kind node_kind(const char *path) {
    if (!readable_path(path)) return NOT_A_NODE;
    if (strcmp(path, "/dev/iommu") == 0) return IOMMUFD_NODE;
    if (strncmp(path, "/dev/vfio/", 10) != 0) return NOT_A_NODE;
    const char *name = path + 10;
    if (strcmp(name, "vfio") == 0) return CONTAINER_NODE;
    if (strncmp(name, "devices/vfio", 12) == 0 && is_number(name + 12)) return CDEV_NODE;
    return is_number(name) ? GROUP_NODE : NOT_A_NODE;
}

static int is_vfio_node(const char *path) {
    if (inside || node_kind(path) == NOT_A_NODE) return 0;
    return ensure_started();
}

static int open_node(const char *path, int flags) {
    enter();
    int fd = sim->open(path, flags);
    int saved = errno;
    leave();
    errno = saved;
    return fd;
}

#define OPEN_MODE(flags) ((flags) & (O_CREAT | O_TMPFILE) ? ({ va_list ap; va_start(ap, flags); mode_t m = va_arg(ap, mode_t); va_end(ap); m; }) : 0)

int open(const char *path, int flags, ...) {
    mode_t mode = OPEN_MODE(flags);
    if (is_vfio_node(path)) return open_node(path, flags);
    char buffer[PATH_MAX];
    return NEED(open)(redirect(path, buffer), flags, mode);
}

int open64(const char *path, int flags, ...) {
    mode_t mode = OPEN_MODE(flags);
    if (is_vfio_node(path)) return open_node(path, flags);
    char buffer[PATH_MAX];
    return NEED(open64)(redirect(path, buffer), flags, mode);
}

int openat(int dirfd, const char *path, int flags, ...) {
    mode_t mode = OPEN_MODE(flags);
    if (is_vfio_node(path)) return open_node(path, flags);
    char buffer[PATH_MAX];
    return NEED(openat)(dirfd, redirect(path, buffer), flags, mode);
}

int openat64(int dirfd, const char *path, int flags, ...) {
    mode_t mode = OPEN_MODE(flags);
    if (is_vfio_node(path)) return open_node(path, flags);
    char buffer[PATH_MAX];
    return NEED(openat64)(dirfd, redirect(path, buffer), flags, mode);
}

int __open_2(const char *path, int flags) {
    if (is_vfio_node(path)) return open_node(path, flags);
    char buffer[PATH_MAX];
    return NEED(__open_2)(redirect(path, buffer), flags);
}

int __open64_2(const char *path, int flags) {
    if (is_vfio_node(path)) return open_node(path, flags);
    char buffer[PATH_MAX];
    return NEED(__open64_2)(redirect(path, buffer), flags);
}

int __openat_2(int dirfd, const char *path, int flags) {
    if (is_vfio_node(path)) return open_node(path, flags);
    char buffer[PATH_MAX];
    return NEED(__openat_2)(dirfd, redirect(path, buffer), flags);
}

FILE *fopen(const char *path, const char *mode) {
    char buffer[PATH_MAX];
    return NEED(fopen)(redirect(path, buffer), mode);
}

FILE *fopen64(const char *path, const char *mode) {
    char buffer[PATH_MAX];
    return NEED(fopen64)(redirect(path, buffer), mode);
}

DIR *opendir(const char *path) {
    char buffer[PATH_MAX];
    return NEED(opendir)(redirect(path, buffer));
}

ssize_t readlink(const char *path, char *out, size_t size) {
    char buffer[PATH_MAX];
    return NEED(readlink)(redirect(path, buffer), out, size);
}

ssize_t readlinkat(int dirfd, const char *path, char *out, size_t size) {
    char buffer[PATH_MAX];
    return NEED(readlinkat)(dirfd, redirect(path, buffer), out, size);
}

// The device nodes are character devices: misc (major 10) for the container and /dev/iommu,
// vfio's own major for groups, vfio-dev's for the device cdevs (both dynamic on Linux).
static void as_device_node(const char *path, mode_t *mode, dev_t *rdev) {
    if (inside || !started) return;
    switch (node_kind(path)) {
    case NOT_A_NODE: return;
    case CONTAINER_NODE: *rdev = makedev(10, 196); break;
    case IOMMUFD_NODE: *rdev = makedev(10, 123); break;
    case GROUP_NODE: *rdev = makedev(511, (unsigned)atoi(path + 10)); break;
    case CDEV_NODE: *rdev = makedev(510, (unsigned)atoi(path + 22)); break;
    }
    *mode = (*mode & ~S_IFMT) | S_IFCHR;
}

// The stat family: the path redirected, a VFIO node reported as the character device it is.
#define STAT(name, type)                                                        \
    int name(const char *path, type *st) {                                      \
        char buffer[PATH_MAX];                                                  \
        int r = NEED(name)(redirect(path, buffer), st);                         \
        if (r == 0) as_device_node(path, &st->st_mode, &st->st_rdev);           \
        return r;                                                               \
    }
STAT(stat, struct stat)
STAT(lstat, struct stat)
STAT(stat64, struct stat64)
STAT(lstat64, struct stat64)

int fstatat(int dirfd, const char *path, struct stat *st, int flags) {
    char buffer[PATH_MAX];
    int r = NEED(fstatat)(dirfd, redirect(path, buffer), st, flags);
    if (r == 0) as_device_node(path, &st->st_mode, &st->st_rdev);
    return r;
}

int fstatat64(int dirfd, const char *path, struct stat64 *st, int flags) {
    char buffer[PATH_MAX];
    int r = NEED(fstatat64)(dirfd, redirect(path, buffer), st, flags);
    if (r == 0) as_device_node(path, &st->st_mode, &st->st_rdev);
    return r;
}

// Out of line: glibc declares statx's path nonnull, yet Linux 6.11 accepts NULL with AT_EMPTY_PATH.
__attribute__((noinline)) static int names_vfio_node(const char *path) {
    return node_kind(path) != NOT_A_NODE && !inside && started;
}

int statx(int dirfd, const char *path, int flags, unsigned int mask, struct statx *st) {
    char buffer[PATH_MAX];
    int r = NEED(statx)(dirfd, redirect(path, buffer), flags, mask, st);
    if (r == 0 && names_vfio_node(path)) {
        mode_t mode = st->stx_mode;
        dev_t rdev = 0;
        as_device_node(path, &mode, &rdev);
        st->stx_mode = (uint16_t)mode;
        st->stx_rdev_major = major(rdev);
        st->stx_rdev_minor = minor(rdev);
    }
    return r;
}

// glibc before 2.33 compiled stat() into these.
#define XSTAT(name, type)                                                       \
    int name(int version, const char *path, type *st) {                         \
        char buffer[PATH_MAX];                                                  \
        int r = NEED(name)(version, redirect(path, buffer), st);                \
        if (r == 0) as_device_node(path, &st->st_mode, &st->st_rdev);           \
        return r;                                                               \
    }
XSTAT(__xstat, struct stat)
XSTAT(__lxstat, struct stat)
XSTAT(__xstat64, struct stat64)
XSTAT(__lxstat64, struct stat64)

int __fxstatat(int version, int dirfd, const char *path, struct stat *st, int flags) {
    char buffer[PATH_MAX];
    int r = NEED(__fxstatat)(version, dirfd, redirect(path, buffer), st, flags);
    if (r == 0) as_device_node(path, &st->st_mode, &st->st_rdev);
    return r;
}

int __fxstatat64(int version, int dirfd, const char *path, struct stat64 *st, int flags) {
    char buffer[PATH_MAX];
    int r = NEED(__fxstatat64)(version, dirfd, redirect(path, buffer), st, flags);
    if (r == 0) as_device_node(path, &st->st_mode, &st->st_rdev);
    return r;
}

// A VFIO descriptor is an anonymous-inode file in Linux ([vfio-device]); here a character device.
int fstat(int fd, struct stat *st) {
    int r = NEED(fstat)(fd, st);
    if (r == 0 && is_vfio(fd)) st->st_mode = (st->st_mode & ~S_IFMT) | S_IFCHR;
    return r;
}

int fstat64(int fd, struct stat64 *st) {
    int r = NEED(fstat64)(fd, st);
    if (r == 0 && is_vfio(fd)) st->st_mode = (st->st_mode & ~S_IFMT) | S_IFCHR;
    return r;
}

int access(const char *path, int mode) {
    char buffer[PATH_MAX];
    return NEED(access)(redirect(path, buffer), mode);
}

int faccessat(int dirfd, const char *path, int mode, int flags) {
    char buffer[PATH_MAX];
    return NEED(faccessat)(dirfd, redirect(path, buffer), mode, flags);
}

// The resolved path of a simulated file is its /sys or /dev path, not the tree's.
char *realpath(const char *path, char *resolved) {
    char buffer[PATH_MAX];
    const char *target = redirect(path, buffer);
    char *result = NEED(realpath)(target, resolved);
    if (result && target != path && strncmp(result, root, root_length) == 0) memmove(result, result + root_length, strlen(result + root_length) + 1);
    return result;
}

// ---------------------------------------------------------------- descriptors

int close(int fd) {
    if (!is_vfio(fd)) return NEED(close)(fd);
    enter();
    int r = sim->close(fd, 0);
    int saved = errno;
    leave();
    errno = saved;
    return r;
}

static int duplicated(int fd, int newfd) {
    if (newfd >= 0 && is_vfio(fd)) {
        enter();
        sim->duplicate(fd, newfd);
        leave();
    }
    return newfd;
}

// dup2/dup3 over a VFIO descriptor close it first, as the kernel does.
static void replaced(int newfd, int oldfd) {
    if (newfd != oldfd && is_vfio(newfd)) {
        enter();
        sim->close(newfd, 1);
        leave();
    }
}

int dup(int fd) { return duplicated(fd, NEED(dup)(fd)); }

int dup2(int fd, int newfd) {
    int r = NEED(dup2)(fd, newfd);
    if (r >= 0) {
        replaced(newfd, fd);
        duplicated(fd, r);
    }
    return r;
}

int dup3(int fd, int newfd, int flags) {
    int r = NEED(dup3)(fd, newfd, flags);
    if (r >= 0) {
        replaced(newfd, fd);
        duplicated(fd, r);
    }
    return r;
}

static int fcntl_common(int (*real)(int, int, ...), int fd, int command, va_list ap) {
    void *argument = va_arg(ap, void *);
    int r = real(fd, command, argument);
    if (r >= 0 && (command == F_DUPFD || command == F_DUPFD_CLOEXEC)) duplicated(fd, r);
    return r;
}

int fcntl(int fd, int command, ...) {
    va_list ap;
    va_start(ap, command);
    int r = fcntl_common(NEED(fcntl), fd, command, ap);
    va_end(ap);
    return r;
}

int fcntl64(int fd, int command, ...) {
    va_list ap;
    va_start(ap, command);
    int r = fcntl_common(NEED(fcntl64) ? real_fcntl64 : real_fcntl, fd, command, ap);
    va_end(ap);
    return r;
}

int ioctl(int fd, unsigned long request, ...) {
    va_list ap;
    va_start(ap, request);
    unsigned long argument = va_arg(ap, unsigned long);
    va_end(ap);
    if (!is_vfio(fd)) return NEED(ioctl)(fd, request, argument);
    enter();
    int r = sim->ioctl(fd, request, argument);
    int saved = errno;
    leave();
    errno = saved;
    return r;
}

static ssize_t sim_pread(int fd, void *buffer, size_t count, int64_t offset) {
    enter();
    ssize_t r = sim->pread(fd, buffer, count, offset);
    int saved = errno;
    leave();
    errno = saved;
    return r;
}

static ssize_t sim_pwrite(int fd, const void *buffer, size_t count, int64_t offset) {
    enter();
    ssize_t r = sim->pwrite(fd, buffer, count, offset);
    int saved = errno;
    leave();
    errno = saved;
    return r;
}

ssize_t pread(int fd, void *buffer, size_t count, off_t offset) {
    return is_vfio(fd) ? sim_pread(fd, buffer, count, offset) : NEED(pread)(fd, buffer, count, offset);
}

ssize_t pread64(int fd, void *buffer, size_t count, off64_t offset) {
    return is_vfio(fd) ? sim_pread(fd, buffer, count, offset) : NEED(pread64)(fd, buffer, count, offset);
}

ssize_t pwrite(int fd, const void *buffer, size_t count, off_t offset) {
    return is_vfio(fd) ? sim_pwrite(fd, buffer, count, offset) : NEED(pwrite)(fd, buffer, count, offset);
}

ssize_t pwrite64(int fd, const void *buffer, size_t count, off64_t offset) {
    return is_vfio(fd) ? sim_pwrite(fd, buffer, count, offset) : NEED(pwrite64)(fd, buffer, count, offset);
}

// Vectored: one region access per vector, in order, stopping at the first short one (as
// vfs_readv does through the file's read op).
static ssize_t vectored(int fd, const struct iovec *iov, int count, off_t offset, int write) {
    if (count < 0 || count > IOV_MAX) {
        errno = EINVAL;
        return -1;
    }
    ssize_t total = 0;
    for (int i = 0; i < count; i++) {
        ssize_t r = write ? sim_pwrite(fd, iov[i].iov_base, iov[i].iov_len, offset + total) : sim_pread(fd, iov[i].iov_base, iov[i].iov_len, offset + total);
        if (r < 0) return total ? total : -1;
        total += r;
        if ((size_t)r < iov[i].iov_len) break;
    }
    return total;
}

ssize_t preadv(int fd, const struct iovec *iov, int count, off_t offset) {
    return is_vfio(fd) ? vectored(fd, iov, count, offset, 0) : NEED(preadv)(fd, iov, count, offset);
}

ssize_t pwritev(int fd, const struct iovec *iov, int count, off_t offset) {
    return is_vfio(fd) ? vectored(fd, iov, count, offset, 1) : NEED(pwritev)(fd, iov, count, offset);
}

// ---------------------------------------------------------------- memory

static void *sim_mmap(void *address, size_t length, int protection, int flags, int fd, int64_t offset) {
    enter();
    void *r = sim->mmap(address, length, protection, flags, fd, offset);
    int saved = errno;
    leave();
    errno = saved;
    return r ? r : MAP_FAILED;
}

// A fixed mapping over a BAR mapping ends it (its trapped window, its VM_PFNMAP range); munmap
// tells the simulation, which keeps pages still pinned for DMA.
static void *placed(size_t length, int flags, void *mapped) {
    if (mapped != MAP_FAILED && (flags & MAP_FIXED) && started && !inside) {
        enter();
        sim->placed(mapped, length);
        leave();
    }
    return mapped;
}

void *mmap(void *address, size_t length, int protection, int flags, int fd, off_t offset) {
    if (is_vfio(fd)) return sim_mmap(address, length, protection, flags, fd, offset);
    return placed(length, flags, NEED(mmap)(address, length, protection, flags, fd, offset));
}

void *mmap64(void *address, size_t length, int protection, int flags, int fd, off64_t offset) {
    if (is_vfio(fd)) return sim_mmap(address, length, protection, flags, fd, offset);
    return placed(length, flags, NEED(mmap64)(address, length, protection, flags, fd, offset));
}

int munmap(void *address, size_t length) {
    if (!started || inside) return NEED(munmap)(address, length);
    enter();
    int r = sim->munmap(address, length);
    int saved = errno;
    leave();
    errno = saved;
    return r;
}

// ---------------------------------------------------------------- signals
// The MMIO trap's handler stays in front for SIGSEGV and SIGBUS; the program's own handler is
// what it falls back to for every fault outside a register window.

int sigaction(int sig, const struct sigaction *action, struct sigaction *old) {
    if ((sig == SIGSEGV || sig == SIGBUS) && !inside && vfiokit_trap_is_installed()) return vfiokit_trap_set_next(sig, action, old);
    return NEED(sigaction)(sig, action, old);
}

sighandler_t signal(int sig, sighandler_t handler) {
    if ((sig == SIGSEGV || sig == SIGBUS) && !inside && vfiokit_trap_is_installed()) {
        struct sigaction action, old;
        memset(&action, 0, sizeof(action));
        action.sa_handler = handler;
        action.sa_flags = SA_RESTART;
        sigemptyset(&action.sa_mask);
        if (vfiokit_trap_set_next(sig, &action, &old) != 0) return SIG_ERR;
        return (old.sa_flags & SA_SIGINFO) ? (sighandler_t)old.sa_sigaction : old.sa_handler;
    }
    return NEED(signal)(sig, handler);
}

#if defined(__clang__) && !defined(VFIOKIT_PRELOAD_COVERAGE)
#pragma clang attribute pop
#endif
