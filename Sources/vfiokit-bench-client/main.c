// The C side of `vfiokit bench`'s preload entries: an ordinary VFIO program, run with the preload
// library by the bench, driving the memcpy engine (0000:5f:00.0 of devices/default) through
// the interposed ioctl and its mmap'd BAR. Prints one line of figures for the bench to read.
//   vfiokit-bench-client map-unmap COUNT ROUNDS   → "map-unmap-ns N"
//   vfiokit-bench-client dma-copy COPIES ROUNDS   → "dma-copy-ns DEVICE MEMCPY" (per 64 KiB copy)
#define _GNU_SOURCE
#include <fcntl.h>
#include <linux/vfio.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

// Its own clock and median rather than CBenchSupport's: linking a library of the package would
// bring a sanitizer build's instrumentation, and this must stay an ordinary program.
static double now_ns(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec * 1e9 + (double)t.tv_nsec;
}

static int compare(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static double median(double *samples, int count) {
    qsort(samples, (size_t)count, sizeof(double), compare);
    return samples[count / 2];
}

static void fail(const char *what) {
    perror(what);
    exit(1);
}

static int container, device;

static void open_engine(void) {
    char link[256];
    ssize_t n = readlink("/sys/bus/pci/devices/0000:5f:00.0/iommu_group", link, sizeof(link) - 1);
    if (n <= 0) fail("readlink iommu_group");
    link[n] = 0;
    char path[64];
    snprintf(path, sizeof(path), "/dev/vfio/%s", strrchr(link, '/') + 1);
    container = open("/dev/vfio/vfio", O_RDWR);
    int group = open(path, O_RDWR);
    if (container < 0 || group < 0) fail("open");
    if (ioctl(group, VFIO_GROUP_SET_CONTAINER, &container) || ioctl(container, VFIO_SET_IOMMU, VFIO_TYPE1v2_IOMMU)) fail("container");
    device = ioctl(group, VFIO_GROUP_GET_DEVICE_FD, "0000:5f:00.0");
    if (device < 0) fail("GET_DEVICE_FD");
}

static int map(void *vaddr, uint64_t iova, uint64_t size) {
    struct vfio_iommu_type1_dma_map m = {.argsz = sizeof(m), .flags = VFIO_DMA_MAP_FLAG_READ | VFIO_DMA_MAP_FLAG_WRITE, .vaddr = (uintptr_t)vaddr, .iova = iova, .size = size};
    return ioctl(container, VFIO_IOMMU_MAP_DMA, &m);
}

static int unmap(uint64_t iova, uint64_t size) {
    struct vfio_iommu_type1_dma_unmap u = {.argsz = sizeof(u), .iova = iova, .size = size};
    return ioctl(container, VFIO_IOMMU_UNMAP_DMA, &u);
}

static void map_unmap(int count, int rounds) {
    void *page = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE, -1, 0);
    double samples[64];
    for (int r = 0; r < rounds && r < 64; r++) {
        double start = now_ns();
        for (int i = 0; i < count; i++)
            if (map(page, 0x100000, 4096) || unmap(0x100000, 4096)) fail("MAP/UNMAP_DMA");
        samples[r] = (now_ns() - start) / count;
    }
    printf("map-unmap-ns %.1f\n", median(samples, rounds < 64 ? rounds : 64));
}

// Copies of 64 KiB: a ring of descriptors, each repeated, one doorbell through the trapped BAR per
// round; completion polled in the completion record (memory), as a driver does.
static void dma_copy(int copies, int rounds) {
    enum { block = 65536, ring_entries = 64 };
    uint8_t *src = mmap(NULL, block, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE, -1, 0);
    uint8_t *dst = mmap(NULL, block, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE, -1, 0);
    uint8_t *ring = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE, -1, 0);
    memset(src, 0x5a, block);
    if (map(src, 0x100000, block) || map(dst, 0x200000, block) || map(ring, 0x10000, 4096)) fail("MAP_DMA");
    struct vfio_region_info config = {.argsz = sizeof(config), .index = VFIO_PCI_CONFIG_REGION_INDEX};
    struct vfio_region_info bar0 = {.argsz = sizeof(bar0), .index = VFIO_PCI_BAR0_REGION_INDEX};
    ioctl(device, VFIO_DEVICE_GET_REGION_INFO, &config);
    ioctl(device, VFIO_DEVICE_GET_REGION_INFO, &bar0);
    uint16_t command = 0x6;
    pwrite(device, &command, 2, config.offset + 4);
    volatile uint8_t *regs = mmap(NULL, bar0.size, PROT_READ | PROT_WRITE, MAP_SHARED, device, bar0.offset);
    if (regs == MAP_FAILED) fail("mmap BAR0");
    int repeat = copies / ring_entries;
    if (repeat < 1) repeat = 1;
    for (int i = 0; i < ring_entries; i++) {
        uint32_t *d = (uint32_t *)(ring + 32 * i);
        d[0] = 0;
        d[1] = block;
        *(uint64_t *)&d[2] = 0x100000;
        *(uint64_t *)&d[4] = 0x200000;
        d[6] = (uint32_t)repeat;
    }
    volatile uint64_t *completion = (volatile uint64_t *)(ring + 0x800 + 8);  // the record's head
    __atomic_thread_fence(__ATOMIC_SEQ_CST);  // wmb(): the descriptors are in memory before any doorbell
    *(volatile uint64_t *)(regs + 0x08) = 0x10000;
    *(volatile uint32_t *)(regs + 0x10) = ring_entries;
    *(volatile uint64_t *)(regs + 0x28) = 0x10808 - 8;
    *(volatile uint32_t *)(regs + 0x14) = 1;
    double device_samples[64], memcpy_samples[64];
    uint32_t tail = 0;
    int total = repeat * ring_entries;
    for (int r = 0; r < rounds && r < 64; r++) {
        double start = now_ns();
        tail += ring_entries;
        *(volatile uint32_t *)(regs + 0x18) = tail;
        for (long spins = 0; *completion != tail; spins++) {
            if (spins > 2000000000L || *(volatile uint32_t *)(regs + 0x20) != 0) {
                fprintf(stderr, "the engine stopped: HEAD %u STATUS %u ERROR %u, completion head %llu of %u\n", *(volatile uint32_t *)(regs + 0x1c),
                        *(volatile uint32_t *)(regs + 0x20), *(volatile uint32_t *)(regs + 0x24), (unsigned long long)*completion, tail);
                exit(1);
            }
        }
        device_samples[r] = (now_ns() - start) / total;
        start = now_ns();
        for (int i = 0; i < total; i++) {
            memcpy(dst, src, block);
            __asm__ volatile("" ::: "memory");
        }
        memcpy_samples[r] = (now_ns() - start) / total;
    }
    if (memcmp(src, dst, block) != 0 || *(volatile uint32_t *)(regs + 0x20) != 0) fail("the device's copies");
    int n = rounds < 64 ? rounds : 64;
    printf("dma-copy-ns %.1f %.1f\n", median(device_samples, n), median(memcpy_samples, n));
}

int main(int argc, char **argv) {
    if (argc != 4) {
        fprintf(stderr, "usage: %s map-unmap|dma-copy COUNT ROUNDS\n", argv[0]);
        return 64;
    }
    open_engine();
    int count = atoi(argv[2]), rounds = atoi(argv[3]);
    if (count < 1 || rounds < 1) return 64;
    if (strcmp(argv[1], "map-unmap") == 0) map_unmap(count, rounds);
    else if (strcmp(argv[1], "dma-copy") == 0) dma_copy(count, rounds);
    else return 64;
    return 0;
}
