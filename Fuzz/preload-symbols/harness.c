// The `preload-symbols` fuzz target: an unmodified C program's libc calls, run under `vfiokit run`
// so every call lands on the preload library's interposed symbols (open, openat, ioctl, mmap,
// munmap, pread, pwrite, close, dup, dup2, fcntl, readlink, stat, access, fork) — the C half of
// the boundary, its path and descriptor bookkeeping and the simulation behind it.
//
// Built with `clang -fsanitize=fuzzer` (libFuzzer's main) by Fuzz/run, or with -DREPLAY (a main
// running each file named on the command line once) by the test suite. Each input is a sequence
// of operations; see `run_one`. What must hold, as on Linux:
//   - every call answers: a value, or -1 (MAP_FAILED) with an errno in 1..133; never a crash of
//     the program for a bad pointer it passed (a path, an ioctl argument, a buffer): EFAULT;
//   - a forked child driving the same descriptors exits normally;
//   - when the input's descriptors are closed and its mappings unmapped, every group can be
//     opened again (nothing stays claimed).
// Hostile but not self-destructive: every address the input supplies, whether as an argument or
// as a word inside an ioctl struct, is folded into the harness's own scratch arena, so the
// simulation may write wherever the input says without corrupting the fuzzer itself.
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/vfio.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#define PAGE 4096UL
#define ARENA_PAGES 64
#define MAX_FDS 16
#define MAX_MAPS 16
#define MAX_OPS 48

// ---------------------------------------------------------------- input

struct input { const uint8_t *data; size_t size, at; };

static uint8_t byte(struct input *in) { return in->at < in->size ? in->data[in->at++] : 0; }
static uint32_t u32(struct input *in) { uint32_t v = 0; for (int i = 0; i < 4; i++) v |= (uint32_t)byte(in) << (8 * i); return v; }
static uint64_t u64(struct input *in) { return (uint64_t)u32(in) | (uint64_t)u32(in) << 32; }

// ---------------------------------------------------------------- memory the input may name

static uint8_t *arena;       // ARENA_PAGES read-write pages: DMA buffers, mappings, bitmaps
static uint8_t *argument;    // one read-write page then one PROT_NONE page
static uint8_t *no_access;   // one PROT_NONE page
static uint8_t *read_only;   // one read-only page

static void die(const char *what) {
    fprintf(stderr, "preload-symbols: %s\n", what);
    abort();
}

static void setup_memory(void) {
    if (arena) return;
    arena = mmap(NULL, ARENA_PAGES * PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    argument = mmap(NULL, 2 * PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    no_access = mmap(NULL, PAGE, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    read_only = mmap(NULL, PAGE, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (arena == MAP_FAILED || argument == MAP_FAILED || no_access == MAP_FAILED || read_only == MAP_FAILED) die("no memory");
    if (mprotect(argument + PAGE, PAGE, PROT_NONE) != 0) die("mprotect");
}

// A user address folded into the arena (a value that could name this process's memory), or left
// as it is (NULL, small numbers, kernel-half and non-canonical addresses).
static uint64_t fold(uint64_t value) {
    if (value < 0x10000 || value >= (1ULL << 47)) return value;
    return (uint64_t)(uintptr_t)arena + value % (ARENA_PAGES * PAGE);
}

// A pointer argument of one of the kinds a buggy or hostile program passes.
static void *hostile_pointer(struct input *in, size_t length) {
    switch (byte(in) % 8) {
    case 0: return NULL;
    case 1: return no_access;
    case 2: return (void *)read_only;
    case 3: return (void *)(uintptr_t)0xffff888000000000ULL;       // the kernel half
    case 4: return argument + PAGE - (length < PAGE ? length : PAGE) + 1;  // runs into the guard page
    case 5: return (void *)(uintptr_t)fold(u64(in));
    default: return arena + (byte(in) % ARENA_PAGES) * PAGE;
    }
}

// ---------------------------------------------------------------- descriptors and mappings

static int fds[MAX_FDS], nfds;
static struct { void *address; size_t length; } maps[MAX_MAPS];
static int nmaps;

static void keep_fd(int fd) {
    if (fd < 0) return;
    if (nfds < MAX_FDS) fds[nfds++] = fd;
    else close(fd);
}

static int pick_fd(struct input *in) {
    uint8_t choice = byte(in);
    if (nfds > 0 && choice < 224) return fds[choice % nfds];
    // Never a descriptor of the fuzzer's or the runtime's own (stdio, logs): an invalid one.
    static const int invalid[] = {-1, -2, 1023, 65535};
    return invalid[choice % 4];
}

static void forget_fd(int fd) {
    for (int i = 0; i < nfds; i++) if (fds[i] == fd) { fds[i] = fds[--nfds]; return; }
}

// ---------------------------------------------------------------- checks

static void check_result(long result, const char *call) {
    if (result >= 0) return;
    if (result != -1) { fprintf(stderr, "%s returned %ld\n", call, result); die("a call returned neither a value nor -1"); }
    if (errno < 1 || errno > 133) { fprintf(stderr, "%s: errno %d\n", call, errno); die("a failed call set no errno"); }
}

// ---------------------------------------------------------------- operations

static const char *const paths[] = {
    "/dev/vfio/vfio", "/dev/vfio/1", "/dev/vfio/2", "/dev/vfio/27", "/dev/vfio/devices/vfio0", "/dev/vfio/devices/vfio1",
    "/dev/iommu", "/dev/vfio/", "/dev/vfio/999", "/dev/vfio/devices/vfio", "/dev/vfio/1x", "/dev/vfio//vfio",
    "/sys/bus/pci/devices/0000:00:04.0/config", "/sys/bus/pci/devices/0000:00:04.0/iommu_group", "/sys/kernel/iommu_groups/1/type",
    "/sys/bus/pci/devices/0000:00:04.0/vfio-dev", "/sys/module/vfio/parameters/enable_unsafe_noiommu_mode", "/sys/module/iommufd",
};
#define NPATHS (sizeof(paths) / sizeof(*paths))

// Under a sanitizer's runtime (the test suite's sanitized runs preload it ahead of the library),
// its interceptors read a path with strlen before the library sees it and fault on a bad one:
// the runtime's fault, not the library's, so paths stay readable there.
static int sanitizer_runtime(void) {
    static int known = -1;
    if (known < 0) known = dlsym(RTLD_DEFAULT, "__tsan_init") || dlsym(RTLD_DEFAULT, "__asan_init");
    return known;
}

// A path argument: one of the simulation's, an unterminated one running into a guard page, or
// a hostile pointer.
static const char *path_argument(struct input *in) {
    uint8_t choice = byte(in);
    if (choice < 200 || sanitizer_runtime()) return paths[choice % NPATHS];
    if (choice < 216) {
        // "/dev/vfio/…" with no NUL before the guard page.
        memset(argument, 'v', PAGE);
        memcpy(argument + PAGE - 12, "/dev/vfio/11", 12);
        return (const char *)argument + PAGE - 12;
    }
    return hostile_pointer(in, 1);
}

static int request_argument_size(struct input *in) { return 1 + byte(in) % 160; }

// The ioctl's request: a VFIO or iommufd number (in range or just past it), or a random one of
// the VFIO type.
static unsigned long request_number(struct input *in) {
    uint8_t choice = byte(in);
    if (choice < 120) return _IO(VFIO_TYPE, VFIO_BASE + choice % 24);
    if (choice < 230) return _IO(VFIO_TYPE, 0x80 + choice % 20);
    return (unsigned long)(uint16_t)((VFIO_TYPE << 8) | byte(in)) | ((unsigned long)(byte(in) & 3) << 30) | ((unsigned long)byte(in) << 16);
}

static void op_ioctl(struct input *in) {
    int fd = pick_fd(in);
    unsigned long request = request_number(in);
    uint8_t kind = byte(in);
    long result;
    if (kind < 40) {
        result = ioctl(fd, request, (unsigned long)u32(in) % 16);  // an integer argument
    } else if (kind < 200) {
        // A struct ending at the guard page: argsz, flags, then fuzz words with addresses folded.
        int length = request_argument_size(in);
        uint8_t *start = argument + PAGE - length;
        for (int i = 0; i < length; i++) start[i] = byte(in);
        if (length >= 4 && (kind & 1)) { uint32_t argsz = (uint32_t)length; memcpy(start, &argsz, 4); }
        for (int i = 8; i + 8 <= length; i += 8) { uint64_t word; memcpy(&word, start + i, 8); word = fold(word); memcpy(start + i, &word, 8); }
        result = ioctl(fd, request, start);
    } else if (kind < 216) {
        int other = pick_fd(in);  // SET_CONTAINER and BIND take a pointer to an fd
        memcpy(argument + PAGE - 4, &other, 4);
        result = ioctl(fd, request, argument + PAGE - 4);
    } else {
        result = ioctl(fd, request, hostile_pointer(in, 16));
    }
    check_result(result, "ioctl");
    if (result > 2 && result < 1024 && fcntl((int)result, F_GETFD) >= 0 && request == VFIO_GROUP_GET_DEVICE_FD) keep_fd((int)result);
}

static void op_open(struct input *in) {
    const char *path = path_argument(in);
    int flags = (byte(in) & 1) ? O_RDWR : O_RDONLY;
    if (byte(in) & 1) flags |= O_CLOEXEC;
    int fd = (byte(in) & 1) ? openat(AT_FDCWD, path, flags) : open(path, flags);
    check_result(fd, "open");
    keep_fd(fd);
}

static void op_mmap(struct input *in) {
    int fd = pick_fd(in);
    uint64_t offset = ((uint64_t)(byte(in) % 10) << 40) + (uint64_t)(byte(in) % 8) * PAGE;
    size_t length = (size_t)(1 + byte(in) % 8) * PAGE;
    int protection = byte(in) % 8;
    int flags = (byte(in) & 1) ? MAP_SHARED : MAP_PRIVATE;
    void *address = NULL;
    if (byte(in) & 1) {
        // MAP_FIXED only inside the arena's upper half, which nothing else uses at the time.
        flags |= MAP_FIXED;
        address = arena + (ARENA_PAGES / 2 + byte(in) % (ARENA_PAGES / 2 - 8)) * PAGE;
    }
    void *mapped = mmap(address, length, protection, flags, fd, (off_t)offset);
    if (mapped == MAP_FAILED) {
        check_result(-1, "mmap");
        return;
    }
    if (address && mapped != address) die("MAP_FIXED mapped elsewhere");
    if (address) {
        // Over the arena: give the pages back to the arena when the input ends.
        if (nmaps < MAX_MAPS) { maps[nmaps].address = mapped; maps[nmaps].length = length; nmaps++; }
        return;
    }
    if (nmaps < MAX_MAPS) { maps[nmaps].address = mapped; maps[nmaps].length = length; nmaps++; }
    else munmap(mapped, length);
}

static void op_munmap(struct input *in) {
    if (nmaps == 0) return;
    int index = byte(in) % nmaps;
    size_t pages = maps[index].length / PAGE, skip = byte(in) % pages;
    size_t length = (1 + byte(in) % (pages - skip)) * PAGE;
    check_result(munmap((uint8_t *)maps[index].address + skip * PAGE, length), "munmap");
}

static void op_rw(struct input *in) {
    int fd = pick_fd(in);
    size_t count = byte(in) % 64;
    uint64_t offset = ((uint64_t)(byte(in) % 10) << 40) + u32(in) % 8192;
    void *buffer = (byte(in) & 3) ? arena + (byte(in) % ARENA_PAGES) * PAGE : hostile_pointer(in, count);
    long result = (byte(in) & 1) ? pwrite(fd, buffer, count, (off_t)offset) : pread(fd, buffer, count, (off_t)offset);
    check_result(result, "pread/pwrite");
}

static void op_descriptor(struct input *in) {
    int fd = pick_fd(in);
    switch (byte(in) % 5) {
    case 0: {
        int result = close(fd);
        check_result(result, "close");
        if (result == 0) forget_fd(fd);
        break;
    }
    case 1: { int copy = dup(fd); check_result(copy, "dup"); keep_fd(copy); break; }
    case 2: { int copy = fcntl(fd, F_DUPFD_CLOEXEC, 64 + byte(in) % 64); check_result(copy, "fcntl"); keep_fd(copy); break; }
    case 3: {
        // dup2 onto one of the input's own descriptors (never onto the program's stdio).
        if (nfds == 0) break;
        int target = fds[byte(in) % nfds];
        int result = dup2(fd, target);
        check_result(result, "dup2");
        break;
    }
    default: {
        struct stat st;
        check_result(fstat(fd, (byte(in) & 1) ? &st : (struct stat *)hostile_pointer(in, sizeof(st))), "fstat");
    }
    }
}

static void op_path_query(struct input *in) {
    const char *path = path_argument(in);
    char link[256];
    struct stat st;
    switch (byte(in) % 3) {
    case 0: check_result(readlink(path, (byte(in) & 1) ? link : (char *)hostile_pointer(in, sizeof(link)), sizeof(link)), "readlink"); break;
    case 1: check_result(stat(path, &st), "stat"); break;
    default: check_result(access(path, byte(in) % 8), "access");
    }
}

static void run_ops(struct input *in, int limit, int allow_fork);

// A child drives the same descriptors for a few operations, then leaves; it must exit normally.
static void op_fork(struct input *in) {
    fflush(NULL);
    pid_t child = fork();
    if (child < 0) { check_result(-1, "fork"); return; }
    if (child == 0) {
        run_ops(in, 4, 0);
        _exit(0);
    }
    // The parent goes on from the same place in the input: the child's moves were its own.
    // libFuzzer's -timeout alarm (SIGALRM, no SA_RESTART) may interrupt the wait: wait again.
    int status;
    pid_t waited;
    while ((waited = waitpid(child, &status, 0)) < 0 && errno == EINTR) {}
    if (waited != child) { fprintf(stderr, "waitpid: %s\n", strerror(errno)); die("waitpid"); }
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
        fprintf(stderr, "child status 0x%x\n", status);
        die("a forked child did not exit normally");
    }
}

static void run_ops(struct input *in, int limit, int allow_fork) {
    for (int n = 0; n < limit && in->at < in->size; n++) {
        switch (byte(in) % 8) {
        case 0: op_open(in); break;
        case 1: case 2: op_ioctl(in); break;
        case 3: op_mmap(in); break;
        case 4: op_munmap(in); break;
        case 5: op_rw(in); break;
        case 6: op_descriptor(in); break;
        default:
            // A fork costs milliseconds (the simulation's state is copied): one op in 256.
            if (allow_fork && (byte(in) & 31) == 0) op_fork(in);
            else op_path_query(in);
        }
    }
}

// After the input: its descriptors closed, its mappings gone, the arena whole again; then every
// group must open (a claim left behind is a finding).
static void tear_down(void) {
    for (int i = 0; i < nfds; i++) close(fds[i]);
    nfds = 0;
    for (int i = 0; i < nmaps; i++) munmap(maps[i].address, maps[i].length);
    nmaps = 0;
    if (mmap(arena, ARENA_PAGES * PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0) != arena) die("arena");
    static const char *const groups[] = {"/dev/vfio/1", "/dev/vfio/2"};
    for (size_t i = 0; i < sizeof(groups) / sizeof(*groups); i++) {
        int fd = open(groups[i], O_RDWR);
        if (fd < 0) {
            fprintf(stderr, "%s: errno %d (%s)\n", groups[i], errno, strerror(errno));
            die("a group stays claimed after every descriptor of the input closed");
        }
        close(fd);
    }
}

#ifndef REPLAY
// The preload library stays loaded in this process, but the programs libFuzzer starts (the
// symbolizer of a crash report) must not load it: built for fuzzing, it needs libFuzzer's
// coverage callbacks, which only this program has, so they would die at once and the report with
// them.
int LLVMFuzzerInitialize(int *argc, char ***argv) {
    (void)argc; (void)argv;
    unsetenv("LD_PRELOAD");
    return 0;
}
#endif

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    setup_memory();
    struct input in = {data, size, 0};
    run_ops(&in, MAX_OPS, 1);
    tear_down();
    return 0;
}

#ifdef REPLAY
// The test suite's replay: each file named is one input; prints how many ran.
int main(int argc, char **argv) {
    int ran = 0;
    for (int i = 1; i < argc; i++) {
        FILE *file = fopen(argv[i], "rb");
        if (!file) { fprintf(stderr, "%s: %s\n", argv[i], strerror(errno)); return 66; }
        static uint8_t buffer[1 << 16];
        size_t size = fread(buffer, 1, sizeof(buffer), file);
        fclose(file);
        LLVMFuzzerTestOneInput(buffer, size);
        ran++;
    }
    printf("replayed %d inputs\n", ran);
    return 0;
}
#endif
