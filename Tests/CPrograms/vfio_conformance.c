// The project's own C conformance program, in the kernel selftests' shape: an unmodified C driver
// of the memcpy engine at 0000:5f:00.0 of devices/default, run under `vfiokit run` — open, group
// status, container, map/unmap (limits, faults), device info, config space, BAR mmap with trapped
// register accesses, shared device RAM, MSI-X on an eventfd, DEVICE_FEATURE (low power), IOEVENTFD, reset,
// descriptors and fork.
// Prints TAP; exits 0 only when every check passed.
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <linux/vfio.h>
#include <setjmp.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

static int checks, failures;

#define CHECK(cond, ...)                                                        \
    do {                                                                        \
        checks++;                                                               \
        if (cond) {                                                             \
            printf("ok %d - ", checks);                                         \
        } else {                                                                \
            failures++;                                                         \
            printf("not ok %d - (errno %d %s) ", checks, errno, strerror(errno)); \
        }                                                                       \
        printf(__VA_ARGS__);                                                    \
        printf("\n");                                                           \
    } while (0)

static const char *bdf = "0000:5f:00.0";

struct fds { int container, group, device; };

static struct fds open_device(void) {
    struct fds f = {-1, -1, -1};
    char link[256], path[64];
    snprintf(path, sizeof(path), "/sys/bus/pci/devices/%s/iommu_group", bdf);
    ssize_t n = readlink(path, link, sizeof(link) - 1);
    if (n <= 0) return f;
    link[n] = 0;
    snprintf(path, sizeof(path), "/dev/vfio/%s", strrchr(link, '/') + 1);
    f.container = open("/dev/vfio/vfio", O_RDWR);
    f.group = open(path, O_RDWR);
    if (f.container < 0 || f.group < 0) return f;
    ioctl(f.group, VFIO_GROUP_SET_CONTAINER, &f.container);
    ioctl(f.container, VFIO_SET_IOMMU, VFIO_TYPE1v2_IOMMU);
    f.device = ioctl(f.group, VFIO_GROUP_GET_DEVICE_FD, bdf);
    return f;
}

static int map_dma(int container, void *vaddr, uint64_t iova, uint64_t size, uint32_t flags) {
    struct vfio_iommu_type1_dma_map map = {.argsz = sizeof(map), .flags = flags, .vaddr = (uintptr_t)vaddr, .iova = iova, .size = size};
    return ioctl(container, VFIO_IOMMU_MAP_DMA, &map);
}

static int unmap_dma(int container, uint64_t iova, uint64_t size, uint64_t *unmapped) {
    struct vfio_iommu_type1_dma_unmap unmap = {.argsz = sizeof(unmap), .iova = iova, .size = size};
    int r = ioctl(container, VFIO_IOMMU_UNMAP_DMA, &unmap);
    if (unmapped) *unmapped = unmap.size;
    return r;
}

static sigjmp_buf recovered;
static volatile int program_handler_ran;
static void program_handler(int sig) {
    (void)sig;
    program_handler_ran = 1;
    siglongjmp(recovered, 1);
}

int main(int argc, char **argv) {
    setvbuf(stdout, NULL, _IOLBF, 0);
    if (argc > 1) bdf = argv[1];
    struct fds f = open_device();
    CHECK(f.container >= 0 && f.group >= 0, "open /dev/vfio/vfio and the group named by iommu_group");
    CHECK(ioctl(f.container, VFIO_GET_API_VERSION) == VFIO_API_VERSION, "VFIO_GET_API_VERSION");
    struct vfio_group_status status = {.argsz = sizeof(status)};
    CHECK(ioctl(f.group, VFIO_GROUP_GET_STATUS, &status) == 0 && (status.flags & VFIO_GROUP_FLAGS_VIABLE) && (status.flags & VFIO_GROUP_FLAGS_CONTAINER_SET), "group viable and in a container");
    CHECK(f.device >= 0, "VFIO_GROUP_GET_DEVICE_FD %s", bdf);
    CHECK(ioctl(f.group, VFIO_GROUP_GET_DEVICE_FD, "0000:ff:1f.7") < 0 && errno == ENODEV, "GET_DEVICE_FD of a function not in the group: ENODEV");
    CHECK(ioctl(f.device, 0x3bff, 0) < 0 && errno == ENOTTY, "an unknown ioctl on the device: ENOTTY");
    CHECK(ioctl(f.container, VFIO_IOMMU_MAP_DMA, (void *)16) < 0 && errno == EFAULT, "MAP_DMA with a hostile argument pointer: EFAULT, no crash");

    struct vfio_device_info info = {.argsz = sizeof(info)};
    CHECK(ioctl(f.device, VFIO_DEVICE_GET_INFO, &info) == 0 && (info.flags & VFIO_DEVICE_FLAGS_PCI) && info.num_regions >= 9, "GET_INFO: a PCI device with %u regions", info.num_regions);

    struct vfio_region_info config = {.argsz = sizeof(config), .index = VFIO_PCI_CONFIG_REGION_INDEX};
    CHECK(ioctl(f.device, VFIO_DEVICE_GET_REGION_INFO, &config) == 0 && !(config.flags & VFIO_REGION_INFO_FLAG_MMAP), "config region: not mmap-able");
    uint16_t vendor = 0, command = 0;
    CHECK(pread(f.device, &vendor, 2, config.offset) == 2 && vendor == 0x1234, "config vendor 0x%04x through pread", vendor);
    pread(f.device, &command, 2, config.offset + 4);
    CHECK(command == 0x0002, "COMMAND 0x%04x right after GET_DEVICE_FD: decode on, bus master off, INTx Disable cleared (VPCI-10, VPCI-13)", command);
    uint16_t intx = command | 0x400, intx_back = 0;
    pwrite(f.device, &intx, 2, config.offset + 4);
    pread(f.device, &intx_back, 2, config.offset + 4);
    CHECK(intx_back == intx, "INTx Disable is virtual and reads back as written: 0x%04x (VPCI-123)", intx_back);
    command |= 0x6;  // memory decode, bus master
    CHECK(pwrite(f.device, &command, 2, config.offset + 4) == 2, "enable memory decode and bus mastering");
    int sysfs = open("/sys/bus/pci/devices/0000:5f:00.0/vendor", O_RDONLY);
    char text[16] = {0};
    CHECK(sysfs >= 0 && read(sysfs, text, sizeof(text) - 1) > 0 && strtoul(text, NULL, 0) == vendor, "sysfs vendor %s matches config space", strtok(text, "\n"));
    close(sysfs);

    // BAR0: registers, trapped per access.
    struct vfio_region_info bar0 = {.argsz = sizeof(bar0), .index = VFIO_PCI_BAR0_REGION_INDEX};
    ioctl(f.device, VFIO_DEVICE_GET_REGION_INFO, &bar0);
    CHECK(bar0.flags & VFIO_REGION_INFO_FLAG_MMAP, "BAR0 (registers) is mmap-able");
    volatile uint8_t *regs = mmap(NULL, bar0.size, PROT_READ | PROT_WRITE, MAP_SHARED, f.device, bar0.offset);
    CHECK(regs != MAP_FAILED, "mmap BAR0");
    uint32_t cap = *(volatile uint32_t *)(regs + 0x00);
    uint32_t through_pread = 0;
    pread(f.device, &through_pread, 4, bar0.offset);
    CHECK(cap == through_pread && (cap & 0xff) == 16, "readl CAP = 0x%08x, as pread reads it", cap);
    *(volatile uint64_t *)(regs + 0x08) = 0x123456789000ull;  // RING_BASE
    CHECK(*(volatile uint64_t *)(regs + 0x08) == 0x123456789000ull, "writeq/readq RING_BASE round trip");
    CHECK(*(volatile uint32_t *)(regs + 0x08) == 0x56789000 && *(volatile uint8_t *)(regs + 0x00) == 0x10 && *(volatile uint16_t *)(regs + 0x00) == (cap & 0xffff), "readl/readb/readw: one access of each width");
    CHECK(pread(f.device, &through_pread, 4, bar0.offset + 0x08) == 4 && through_pread == 0x56789000, "the write reached the device (pread sees it)");
    CHECK(mmap(NULL, 4096, PROT_READ, MAP_PRIVATE, f.device, bar0.offset) == MAP_FAILED && errno == EINVAL, "MAP_PRIVATE of a BAR: EINVAL (VPCI-100)");
    pid_t decodeless = fork();
    if (decodeless == 0) {
        uint16_t off = command & ~0x2;  // memory decode off: a BAR access is SIGBUS (VPCI-102)
        pwrite(f.device, &off, 2, config.offset + 4);
        (void)*(volatile uint32_t *)(regs + 0x00);
        _exit(0);
    }
    int decodeless_status = 0;
    waitpid(decodeless, &decodeless_status, 0);
    CHECK(WIFSIGNALED(decodeless_status) && WTERMSIG(decodeless_status) == SIGBUS, "a register read with memory decode off is SIGBUS (VPCI-102)");
    CHECK(mmap(NULL, 4096, PROT_READ, MAP_SHARED, f.device, config.offset) == MAP_FAILED && errno == EINVAL, "mmap of config space: EINVAL");

    // A program's own SIGSEGV handler still sees its own faults.
    signal(SIGSEGV, program_handler);
    char *guard = mmap(NULL, 4096, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (sigsetjmp(recovered, 1) == 0) (void)*(volatile char *)guard;
    CHECK(program_handler_ran, "a fault outside every BAR reaches the program's own SIGSEGV handler");
    CHECK(*(volatile uint32_t *)(regs + 0x00) == cap, "register reads still trap after the program installed its handler");
    signal(SIGSEGV, SIG_DFL);

    // BAR2: device RAM, shared by every mapping.
    struct vfio_region_info bar2 = {.argsz = sizeof(bar2), .index = VFIO_PCI_BAR2_REGION_INDEX};
    ioctl(f.device, VFIO_DEVICE_GET_REGION_INFO, &bar2);
    uint32_t *ram1 = mmap(NULL, bar2.size, PROT_READ | PROT_WRITE, MAP_SHARED, f.device, bar2.offset);
    uint32_t *ram2 = mmap(NULL, bar2.size, PROT_READ | PROT_WRITE, MAP_SHARED, f.device, bar2.offset);
    ram1[7] = 0xfeedf00d;
    CHECK(ram1 != MAP_FAILED && ram2 != MAP_FAILED && ram2[7] == 0xfeedf00d, "two mappings of device RAM share their bytes");

    // VPCI-103/102: a COMMAND write clearing memory decode zaps the RAM mappings; an access then is
    // SIGBUS; with decode on again the mapping faults back in.
    uint16_t ram_command = 0;
    pread(f.device, &ram_command, 2, config.offset + 4);
    pid_t zapped = fork();
    if (zapped == 0) {
        signal(SIGBUS, SIG_DFL);
        alarm(10);
        uint16_t off = ram_command & ~0x2;
        pwrite(f.device, &off, 2, config.offset + 4);
        (void)*(volatile uint32_t *)&ram1[7];
        _exit(0);
    }
    int zapped_status = 0;
    waitpid(zapped, &zapped_status, 0);
    CHECK(WIFSIGNALED(zapped_status) && WTERMSIG(zapped_status) == SIGBUS, "a device-RAM mapping read with memory decode off is SIGBUS (zapped, VPCI-102/103)");
    uint16_t decode_off = ram_command & ~0x2;
    pwrite(f.device, &decode_off, 2, config.offset + 4);
    pwrite(f.device, &ram_command, 2, config.offset + 4);
    CHECK(*(volatile uint32_t *)&ram1[7] == 0xfeedf00d, "with decode on again the zapped RAM mapping faults back in (VPCI-103)");

    // DMA mapping of the program's own memory.
    size_t size = 1 << 20;
    uint8_t *src = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    uint8_t *dst = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    uint8_t *ring = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    CHECK(map_dma(f.container, src, 0x100000, size, VFIO_DMA_MAP_FLAG_READ) == 0, "MAP_DMA anonymous private memory (device reads)");
    CHECK(map_dma(f.container, dst, 0x200000, size, VFIO_DMA_MAP_FLAG_READ | VFIO_DMA_MAP_FLAG_WRITE) == 0, "MAP_DMA shared anonymous memory");
    CHECK(map_dma(f.container, ring, 0x10000, 4096, VFIO_DMA_MAP_FLAG_READ | VFIO_DMA_MAP_FLAG_WRITE) == 0, "MAP_DMA the descriptor page");
    CHECK(map_dma(f.container, guard, 0x400000, 4096, VFIO_DMA_MAP_FLAG_READ) < 0 && errno == EFAULT, "MAP_DMA of PROT_NONE memory: EFAULT");
    uint8_t *readonly = mmap(NULL, 4096, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    CHECK(map_dma(f.container, readonly, 0x400000, 4096, VFIO_DMA_MAP_FLAG_READ | VFIO_DMA_MAP_FLAG_WRITE) < 0 && errno == EFAULT, "MAP_DMA of read-only memory for device writes: EFAULT");
    CHECK(map_dma(f.container, readonly, 0x400000, 4096, VFIO_DMA_MAP_FLAG_READ) == 0, "the same read-only memory for device reads: accepted");
    CHECK(map_dma(f.container, (void *)regs, 0x800000, 4096, VFIO_DMA_MAP_FLAG_READ | VFIO_DMA_MAP_FLAG_WRITE) == 0, "MAP_DMA of an mmap'd BAR: accepted as VM_PFNMAP (VST-11)");
    CHECK(map_dma(f.container, src, 0x100000, 4096, VFIO_DMA_MAP_FLAG_READ) < 0 && errno == EEXIST, "MAP_DMA over a mapped IOVA: EEXIST");
    int memfd = memfd_create("vfio-conformance", MFD_CLOEXEC);
    void *shared = memfd >= 0 && ftruncate(memfd, 1 << 16) == 0 ? mmap(NULL, 1 << 16, PROT_READ | PROT_WRITE, MAP_SHARED, memfd, 0) : MAP_FAILED;
    CHECK(shared != MAP_FAILED && map_dma(f.container, shared, 0x1000000, 1 << 16, VFIO_DMA_MAP_FLAG_READ | VFIO_DMA_MAP_FLAG_WRITE) == 0, "MAP_DMA of a memfd's shared mapping");
    void *huge = mmap(NULL, 2 << 20, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_HUGETLB, -1, 0);
    if (huge == MAP_FAILED) {
        checks++;
        printf("ok %d - MAP_DMA of a 2 MiB MAP_HUGETLB page # SKIP no huge pages on this host\n", checks);
    } else {
        CHECK(map_dma(f.container, huge, 0x2000000, 2 << 20, VFIO_DMA_MAP_FLAG_READ | VFIO_DMA_MAP_FLAG_WRITE) == 0, "MAP_DMA of a 2 MiB MAP_HUGETLB page");
    }

    // MSI-X vector 0 on an eventfd.
    int efd = eventfd(0, EFD_NONBLOCK);
    char buffer[sizeof(struct vfio_irq_set) + sizeof(int)];
    struct vfio_irq_set *irq = (struct vfio_irq_set *)buffer;
    *irq = (struct vfio_irq_set){.argsz = sizeof(buffer), .flags = VFIO_IRQ_SET_DATA_EVENTFD | VFIO_IRQ_SET_ACTION_TRIGGER, .index = VFIO_PCI_MSIX_IRQ_INDEX, .start = 0, .count = 1};
    memcpy(irq->data, &efd, sizeof(int));
    CHECK(ioctl(f.device, VFIO_DEVICE_SET_IRQS, irq) == 0, "SET_IRQS: MSI-X vector 0 on an eventfd");

    // A copy: one descriptor, doorbell through the mapped BAR, completion and interrupt.
    for (size_t i = 0; i < size; i++) src[i] = (uint8_t)(i * 7);
    uint32_t *d = (uint32_t *)ring;
    d[0] = 1; d[1] = 65536;  // interrupt on completion, 64 KiB
    *(uint64_t *)&d[2] = 0x100000;
    *(uint64_t *)&d[4] = 0x200000;
    d[6] = 16;  // sixteen 64 KiB copies = 1 MiB
    __atomic_thread_fence(__ATOMIC_SEQ_CST);  // wmb(): descriptors reach memory before the device is told
    *(volatile uint64_t *)(regs + 0x08) = 0x10000;  // RING_BASE
    *(volatile uint32_t *)(regs + 0x10) = 4;        // RING_SIZE
    *(volatile uint64_t *)(regs + 0x28) = 0x10800;  // COMPLETION
    *(volatile uint32_t *)(regs + 0x14) = 1;        // CTRL: enable
    *(volatile uint32_t *)(regs + 0x18) = 1;        // TAIL: doorbell
    uint64_t count = 0;
    CHECK(read(efd, &count, 8) == 8 && count == 1, "the copy's interrupt fired on the eventfd");
    CHECK(*(volatile uint32_t *)(regs + 0x1c) == 1 && *(volatile uint32_t *)(ring + 0x800) == 1, "HEAD advanced and the completion record says success");
    CHECK(memcmp(src, dst, 65536) == 0, "the device copied through the IOMMU into the program's memory");

    // A fault: the IOVA the descriptor names is not mapped.
    *(uint64_t *)&d[12] = 0x700000;  // descriptor 1: src unmapped
    d[8] = 0; d[9] = 4096; *(uint64_t *)&d[10] = 0x900000; d[14] = 1;
    *(uint64_t *)&d[10] = 0x700000; *(uint64_t *)&d[12] = 0x200000;
    __atomic_thread_fence(__ATOMIC_SEQ_CST);
    *(volatile uint32_t *)(regs + 0x18) = 2;
    CHECK(*(volatile uint32_t *)(regs + 0x20) == 1 && *(volatile uint32_t *)(regs + 0x24) == 2, "an unmapped source halts the channel with a read fault, the program unharmed");

    // munmap of memory still mapped for DMA: the pinned pages stay for the device.
    CHECK(munmap(dst, size) == 0, "munmap of DMA-mapped memory succeeds");
    uint64_t unmapped = 0;
    CHECK(unmap_dma(f.container, 0x200000, size, &unmapped) == 0 && unmapped == size, "UNMAP_DMA returns the size (%llu)", (unsigned long long)unmapped);
    CHECK(unmap_dma(f.container, 0x100000, 4096, &unmapped) < 0 && errno == EINVAL, "UNMAP_DMA bisecting a mapping (v2): EINVAL");

    // VFIO_DEVICE_FEATURE (VPCI-250..253): core validation, vfio-pci's features, low power with a wakeup eventfd.
    struct { struct vfio_device_feature header; struct vfio_device_low_power_entry_with_wakeup entry; } feature = {0};
    feature.header = (struct vfio_device_feature){.argsz = sizeof(struct vfio_device_feature), .flags = VFIO_DEVICE_FEATURE_PROBE | VFIO_DEVICE_FEATURE_SET | VFIO_DEVICE_FEATURE_LOW_POWER_ENTRY};
    CHECK(ioctl(f.device, VFIO_DEVICE_FEATURE, &feature) == 0, "FEATURE PROBE|SET LOW_POWER_ENTRY: supported");
    feature.header.flags = VFIO_DEVICE_FEATURE_PROBE | VFIO_DEVICE_FEATURE_SET | VFIO_DEVICE_FEATURE_PCI_VF_TOKEN;
    CHECK(ioctl(f.device, VFIO_DEVICE_FEATURE, &feature) < 0 && errno == ENOTTY, "FEATURE PCI_VF_TOKEN on a function that is no SR-IOV PF: ENOTTY");
    feature.header.flags = VFIO_DEVICE_FEATURE_GET | VFIO_DEVICE_FEATURE_MIGRATION;
    CHECK(ioctl(f.device, VFIO_DEVICE_FEATURE, &feature) < 0 && errno == ENOTTY, "FEATURE MIGRATION: ENOTTY (no migration ops)");
    feature.header.flags = (1u << 19) | VFIO_DEVICE_FEATURE_SET | VFIO_DEVICE_FEATURE_LOW_POWER_EXIT;
    CHECK(ioctl(f.device, VFIO_DEVICE_FEATURE, &feature) < 0 && errno == EINVAL, "FEATURE with an unknown flag: EINVAL");
    int wake = eventfd(0, EFD_NONBLOCK);
    feature.header = (struct vfio_device_feature){.argsz = sizeof(feature), .flags = VFIO_DEVICE_FEATURE_SET | VFIO_DEVICE_FEATURE_LOW_POWER_ENTRY_WITH_WAKEUP};
    feature.entry.wakeup_eventfd = wake;
    CHECK(ioctl(f.device, VFIO_DEVICE_FEATURE, &feature) == 0, "FEATURE LOW_POWER_ENTRY_WITH_WAKEUP");
    uint64_t woken = 0;
    CHECK(read(wake, &woken, 8) < 0 && errno == EAGAIN, "the wakeup eventfd is quiet while nothing touches the device");
    CHECK(ioctl(f.device, VFIO_DEVICE_GET_INFO, &info) == 0 && read(wake, &woken, 8) == 8 && woken == 1, "the next ioctl resumes the device and signals the wakeup eventfd");
    close(wake);
    pid_t sleeper = fork();
    if (sleeper == 0) {
        struct vfio_device_feature enter = {.argsz = sizeof(enter), .flags = VFIO_DEVICE_FEATURE_SET | VFIO_DEVICE_FEATURE_LOW_POWER_ENTRY};
        if (ioctl(f.device, VFIO_DEVICE_FEATURE, &enter) != 0) _exit(2);
        (void)*(volatile uint32_t *)(regs + 0x00);  // a mapped BAR access while in low power: SIGBUS (VPCI-253)
        _exit(0);
    }
    int sleeper_status = 0;
    waitpid(sleeper, &sleeper_status, 0);
    CHECK(WIFSIGNALED(sleeper_status) && WTERMSIG(sleeper_status) == SIGBUS, "a register read through the mapping while in low power is SIGBUS");
    pid_t ram_sleeper = fork();
    if (ram_sleeper == 0) {
        signal(SIGBUS, SIG_DFL);
        alarm(10);
        struct vfio_device_feature enter = {.argsz = sizeof(enter), .flags = VFIO_DEVICE_FEATURE_SET | VFIO_DEVICE_FEATURE_LOW_POWER_ENTRY};
        if (ioctl(f.device, VFIO_DEVICE_FEATURE, &enter) != 0) _exit(2);
        (void)*(volatile uint32_t *)&ram1[7];  // low-power entry zapped the RAM mapping: SIGBUS (VPCI-253)
        _exit(0);
    }
    int ram_sleeper_status = 0;
    waitpid(ram_sleeper, &ram_sleeper_status, 0);
    CHECK(WIFSIGNALED(ram_sleeper_status) && WTERMSIG(ram_sleeper_status) == SIGBUS, "low-power entry zaps the device-RAM mapping: a read then is SIGBUS");

    // VFIO_DEVICE_IOEVENTFD (VPCI-240..242): a signal writes the data into BAR2.
    int iofd = eventfd(0, EFD_NONBLOCK);
    struct vfio_device_ioeventfd ioeventfd = {.argsz = sizeof(ioeventfd), .flags = VFIO_DEVICE_IOEVENTFD_32, .offset = bar2.offset + 0x40, .data = 0xabcd1234, .fd = iofd};
    CHECK(ioctl(f.device, VFIO_DEVICE_IOEVENTFD, &ioeventfd) == 0, "IOEVENTFD: 4 bytes at BAR2 + 0x40");
    ram1[0x10] = 0;
    uint64_t one = 1;
    CHECK(write(iofd, &one, 8) == 8, "signal the ioeventfd");
    for (int i = 0; i < 400 && ram1[0x10] != 0xabcd1234; i++) usleep(5000);
    CHECK(ram1[0x10] == 0xabcd1234, "the signal wrote 0x%08x into device RAM", ram1[0x10]);
    ioeventfd.fd = -1;
    CHECK(ioctl(f.device, VFIO_DEVICE_IOEVENTFD, &ioeventfd) == 0, "IOEVENTFD fd -1 removes it");
    CHECK(ioctl(f.device, VFIO_DEVICE_IOEVENTFD, &ioeventfd) < 0 && errno == ENODEV, "removing it again: ENODEV");
    ioeventfd.flags = VFIO_DEVICE_IOEVENTFD_64;
    ioeventfd.fd = iofd;
    CHECK(ioctl(f.device, VFIO_DEVICE_IOEVENTFD, &ioeventfd) < 0 && errno == EINVAL, "an 8-byte ioeventfd: EINVAL");
    close(iofd);

    // Reset, dup and close.
    uint16_t before_reset = 0, after_reset = 0;
    pread(f.device, &before_reset, 2, config.offset + 4);
    CHECK(ioctl(f.device, VFIO_DEVICE_RESET) == 0, "VFIO_DEVICE_RESET");
    pread(f.device, &after_reset, 2, config.offset + 4);
    CHECK(after_reset == before_reset && (after_reset & 0x6) == 0x6, "COMMAND 0x%04x after RESET as before it: pci_try_reset_function saves and restores bus master and decode (VPCI-201)", after_reset);
    int copy = dup(f.device);
    CHECK(copy >= 0 && close(f.device) == 0 && ioctl(copy, VFIO_DEVICE_GET_INFO, &info) == 0, "a dup of the device fd keeps the device open");
    int high = fcntl(copy, F_DUPFD_CLOEXEC, 100);
    CHECK(high >= 100 && close(copy) == 0 && ioctl(high, VFIO_DEVICE_GET_INFO, &info) == 0, "F_DUPFD_CLOEXEC copies it too");
    CHECK(close(high) == 0 && ioctl(high, VFIO_DEVICE_GET_INFO, &info) < 0 && errno == EBADF, "after the last close: EBADF");

    // fork: the child opens and uses the device itself.
    pid_t pid = fork();
    if (pid == 0) {
        close(f.group);
        close(f.container);
        struct fds c = open_device();
        struct vfio_device_info child_info = {.argsz = sizeof(child_info)};
        _exit(c.device >= 0 && ioctl(c.device, VFIO_DEVICE_GET_INFO, &child_info) == 0 ? 0 : 1);
    }
    int wstatus = 0;
    waitpid(pid, &wstatus, 0);
    CHECK(WIFEXITED(wstatus) && WEXITSTATUS(wstatus) == 0, "a forked child opens and uses the device itself");

    CHECK(close(f.group) == 0 && close(f.container) == 0, "close the group and the container");
    printf("1..%d\n# %d of %d checks failed\n", checks, failures, checks);
    return failures ? 1 : 0;
}
