// nvme_bringup: an unmodified userspace NVMe driver's bring-up of the controller at 0000:5e:00.0
// of devices/default (or argv[1]), plain C against <linux/vfio.h>, run under `vfiokit run`. The
// sequence is a real driver's (Linux's nvme_pci_enable/nvme_pci_configure_admin_queue,
// nvme_init_ctrl_finish, nvme_setup_io_queues; SPDK's nvme_ctrlr_process_init): find the IOMMU
// group through sysfs, a type1v2 container, BAR0 mmap'd (registers trapped per access, 32- and
// 64-bit), CC.EN = 0 and CSTS.RDY = 0, the admin queues (AQA/ASQ/ACQ), CC.EN = 1 and CSTS.RDY = 1,
// Identify controller, Set Features Number of Queues (completion DW0), Identify active namespace
// list, namespace 1 and its identification descriptors, an interrupt-driven I/O queue pair (MSI-X
// vector 1 on an eventfd) and a polled one (no interrupts, as Linux's poll queues), a block pattern
// written and read back across PRP list pages, Flush of namespace 1 and of every namespace, an
// Asynchronous Event Request left outstanding, the SMART/Health log, then the queues deleted and
// a normal shutdown (CC.SHN, CSTS.SHST). NVMe Base Specification 1.4 section numbers in the
// checks. Prints TAP; exits 0 only when every check passed.
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <linux/vfio.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <time.h>
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

// Controller registers (§3.1).
enum { REG_CAP = 0x00, REG_VS = 0x08, REG_CC = 0x14, REG_CSTS = 0x1c, REG_AQA = 0x24, REG_ASQ = 0x28, REG_ACQ = 0x30, REG_DBS = 0x1000 };
enum { CSTS_RDY = 1, CSTS_CFS = 2, CSTS_SHST_MASK = 0xc, CSTS_SHST_COMPLETE = 0x8 };
// Admin and NVM opcodes (§5, §6).
enum { ADM_DELETE_SQ = 0x00, ADM_CREATE_SQ = 0x01, ADM_GET_LOG = 0x02, ADM_DELETE_CQ = 0x04, ADM_CREATE_CQ = 0x05, ADM_IDENTIFY = 0x06, ADM_SET_FEATURES = 0x09, ADM_GET_FEATURES = 0x0a, ADM_AER = 0x0c };
enum { NVM_FLUSH = 0x00, NVM_WRITE = 0x01, NVM_READ = 0x02 };

// The driver's DMA memory: one region, these offsets.
enum {
    ADMIN_SQ = 0x0000, ADMIN_CQ = 0x1000, IDENTIFY = 0x2000, IO_SQ1 = 0x3000, IO_CQ1 = 0x4000, IO_SQ2 = 0x5000, IO_CQ2 = 0x6000,
    PRP_LIST_WRITE = 0x7000, PRP_LIST_READ = 0x8000, LOG = 0x9000, WRITE_BUFFER = 0x10000, READ_BUFFER = 0x30000, DMA_SIZE = 0x50000,
};
static const uint64_t dma_iova = 0x40000000;
static const uint32_t admin_entries = 32, io_entries = 64;

static const char *bdf = "0000:5e:00.0";
static volatile uint8_t *bar;
static uint8_t *dma;
static uint32_t doorbell_stride = 4;
static unsigned timeout_ms = 500;

static uint32_t readl(uint32_t offset) { return *(volatile uint32_t *)(bar + offset); }
static uint64_t readq(uint32_t offset) { return *(volatile uint64_t *)(bar + offset); }
static void writel(uint32_t offset, uint32_t value) { *(volatile uint32_t *)(bar + offset) = value; }
static void writeq(uint32_t offset, uint64_t value) { *(volatile uint64_t *)(bar + offset) = value; }

static uint64_t now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

// Polls CSTS until (CSTS & mask) == value within CAP.TO; CSTS.CFS ends it.
static int wait_csts(uint32_t mask, uint32_t value) {
    uint64_t deadline = now_ms() + timeout_ms;
    for (;;) {
        uint32_t csts = readl(REG_CSTS);
        if ((csts & mask) == value) return 0;
        if ((csts & CSTS_CFS) || now_ms() > deadline) return -1;
        usleep(1000);
    }
}

struct queue {
    uint16_t id, entries, tail, head, next_cid;
    int phase;
    uint32_t sq_offset, cq_offset;
};

struct completion {
    uint32_t dw0;
    uint16_t cid, status;  // status: SC (7:0), SCT (10:8), DNR (14)
};

// Places a command at the tail with the next command identifier and rings SQyTDBL.
static uint16_t submit(struct queue *q, uint32_t cmd[16]) {
    uint16_t cid = q->next_cid++;
    cmd[0] = (cmd[0] & 0xffff) | (uint32_t)cid << 16;
    memcpy(dma + q->sq_offset + (size_t)q->tail * 64, cmd, 64);
    q->tail = (q->tail + 1) % q->entries;
    __atomic_thread_fence(__ATOMIC_SEQ_CST);  // wmb(): the entry reaches memory before the doorbell
    writel(REG_DBS + 2 * q->id * doorbell_stride, q->tail);
    return cid;
}

// Whether the entry at the head carries the current phase: a new completion (§4.6).
static int completion_ready(struct queue *q) {
    volatile uint32_t *entry = (volatile uint32_t *)(dma + q->cq_offset + (size_t)q->head * 16);
    return (int)((entry[3] >> 16) & 1) == q->phase;
}

// Takes the completion at the head (which must be ready) and rings CQyHDBL.
static struct completion take(struct queue *q) {
    volatile uint32_t *entry = (volatile uint32_t *)(dma + q->cq_offset + (size_t)q->head * 16);
    struct completion c = {.dw0 = entry[0], .cid = (uint16_t)entry[3], .status = (uint16_t)(entry[3] >> 17)};
    q->head = (q->head + 1) % q->entries;
    if (q->head == 0) q->phase = !q->phase;
    writel(REG_DBS + (2 * q->id + 1) * doorbell_stride, q->head);
    return c;
}

// Spins on the phase tag (no interrupt involved) for up to a second.
static int poll_completion(struct queue *q, struct completion *c) {
    uint64_t deadline = now_ms() + 1000;
    while (!completion_ready(q)) {
        if (now_ms() > deadline) return -1;
    }
    *c = take(q);
    return 0;
}

static struct queue admin = {.id = 0, .entries = admin_entries, .sq_offset = ADMIN_SQ, .cq_offset = ADMIN_CQ, .phase = 1};
static struct queue io1 = {.id = 1, .entries = io_entries, .sq_offset = IO_SQ1, .cq_offset = IO_CQ1, .phase = 1};
static struct queue io2 = {.id = 2, .entries = io_entries, .sq_offset = IO_SQ2, .cq_offset = IO_CQ2, .phase = 1};

// One admin command, polled to completion; its status (-1: no completion, or another command's).
static int admin_command(uint8_t opcode, uint32_t nsid, uint64_t prp1, uint32_t cdw10, uint32_t cdw11, uint32_t *dw0) {
    uint32_t cmd[16] = {opcode, nsid};
    cmd[6] = (uint32_t)prp1;
    cmd[7] = (uint32_t)(prp1 >> 32);
    cmd[10] = cdw10;
    cmd[11] = cdw11;
    uint16_t cid = submit(&admin, cmd);
    struct completion c;
    if (poll_completion(&admin, &c) != 0 || c.cid != cid) return -1;
    if (dw0) *dw0 = c.dw0;
    return c.status & 0x7ff;
}

static uint64_t iova(uint32_t offset) { return dma_iova + offset; }

// A Read or Write of `blocks` 512-byte blocks at `lba` from the buffer at `offset` (mid-page:
// PRP1 the rest of its page, PRP2 a PRP list of the following pages, §4.3).
static void data_command(uint32_t cmd[16], uint8_t opcode, uint64_t lba, uint32_t offset, uint32_t blocks, uint32_t list) {
    memset(cmd, 0, 64);
    cmd[0] = opcode;
    cmd[1] = 1;
    cmd[6] = (uint32_t)iova(offset);
    cmd[7] = (uint32_t)(iova(offset) >> 32);
    uint32_t first = 4096 - offset % 4096, length = blocks * 512;
    uint64_t *entries = (uint64_t *)(dma + list);
    for (uint32_t n = 0; first + n * 4096 < length; n++) entries[n] = iova(offset - offset % 4096 + 4096 * (n + 1));
    cmd[8] = (uint32_t)iova(list);
    cmd[9] = (uint32_t)(iova(list) >> 32);
    cmd[10] = (uint32_t)lba;
    cmd[11] = (uint32_t)(lba >> 32);
    cmd[12] = blocks - 1;
}

static int set_msix(int device, int count, const int *fds) {
    char buffer[sizeof(struct vfio_irq_set) + 2 * sizeof(int)];
    struct vfio_irq_set *irq = (struct vfio_irq_set *)buffer;
    *irq = (struct vfio_irq_set){
        .argsz = (uint32_t)(sizeof(struct vfio_irq_set) + count * sizeof(int)),
        .flags = (count ? VFIO_IRQ_SET_DATA_EVENTFD : VFIO_IRQ_SET_DATA_NONE) | VFIO_IRQ_SET_ACTION_TRIGGER,
        .index = VFIO_PCI_MSIX_IRQ_INDEX, .start = 0, .count = (uint32_t)count};
    if (count) memcpy(irq->data, fds, count * sizeof(int));
    return ioctl(device, VFIO_DEVICE_SET_IRQS, irq);
}

// Identify's ASCII fields are padded with spaces.
static void trim(char *text) {
    size_t length = strlen(text);
    while (length > 0 && text[length - 1] == ' ') text[--length] = 0;
}

static uint64_t drain(int efd) {
    uint64_t count = 0;
    return read(efd, &count, 8) == 8 ? count : 0;
}

int main(int argc, char **argv) {
    setvbuf(stdout, NULL, _IOLBF, 0);
    if (argc > 1) bdf = argv[1];

    // The group, as real programs find it: /sys/bus/pci/devices/BDF/iommu_group.
    char link[256], path[128];
    snprintf(path, sizeof(path), "/sys/bus/pci/devices/%s/iommu_group", bdf);
    ssize_t n = readlink(path, link, sizeof(link) - 1);
    CHECK(n > 0, "iommu_group of %s", bdf);
    if (n <= 0) return 1;
    link[n] = 0;
    snprintf(path, sizeof(path), "/dev/vfio/%s", strrchr(link, '/') + 1);
    int container = open("/dev/vfio/vfio", O_RDWR), group = open(path, O_RDWR);
    CHECK(container >= 0 && group >= 0, "open /dev/vfio/vfio and %s", path);
    struct vfio_group_status group_status = {.argsz = sizeof(group_status)};
    CHECK(ioctl(group, VFIO_GROUP_GET_STATUS, &group_status) == 0 && (group_status.flags & VFIO_GROUP_FLAGS_VIABLE), "group viable");
    CHECK(ioctl(container, VFIO_CHECK_EXTENSION, VFIO_TYPE1v2_IOMMU) == 1, "container offers type1v2");
    CHECK(ioctl(group, VFIO_GROUP_SET_CONTAINER, &container) == 0 && ioctl(container, VFIO_SET_IOMMU, VFIO_TYPE1v2_IOMMU) == 0, "group in a type1v2 container");
    int device = ioctl(group, VFIO_GROUP_GET_DEVICE_FD, bdf);
    CHECK(device >= 0, "VFIO_GROUP_GET_DEVICE_FD %s", bdf);
    if (device < 0) return 1;

    // Config space: an NVM Express controller (class 010802); memory decode and bus mastering on.
    struct vfio_region_info config = {.argsz = sizeof(config), .index = VFIO_PCI_CONFIG_REGION_INDEX};
    ioctl(device, VFIO_DEVICE_GET_REGION_INFO, &config);
    uint32_t class_revision = 0;
    uint16_t vendor = 0, command = 0;
    pread(device, &vendor, 2, config.offset);
    pread(device, &class_revision, 4, config.offset + 8);
    CHECK(class_revision >> 8 == 0x010802, "class code 0x%06x: NVM Express", class_revision >> 8);
    pread(device, &command, 2, config.offset + 4);
    command |= 0x6;
    CHECK(pwrite(device, &command, 2, config.offset + 4) == 2, "memory decode and bus master on");
    struct vfio_irq_info msix = {.argsz = sizeof(msix), .index = VFIO_PCI_MSIX_IRQ_INDEX};
    CHECK(ioctl(device, VFIO_DEVICE_GET_IRQ_INFO, &msix) == 0 && msix.count >= 2, "MSI-X: %u vectors", msix.count);

    // BAR0: registers, doorbells, MSI-X table and PBA; mmap'd, every access trapped.
    struct vfio_region_info bar0 = {.argsz = sizeof(bar0), .index = VFIO_PCI_BAR0_REGION_INDEX};
    CHECK(ioctl(device, VFIO_DEVICE_GET_REGION_INFO, &bar0) == 0 && (bar0.flags & VFIO_REGION_INFO_FLAG_MMAP) && bar0.size >= 0x2000, "BAR0 is mmap-able (%llu bytes)", (unsigned long long)bar0.size);
    bar = mmap(NULL, bar0.size, PROT_READ | PROT_WRITE, MAP_SHARED, device, bar0.offset);
    CHECK(bar != MAP_FAILED, "mmap BAR0");
    if (bar == MAP_FAILED) return 1;
    uint64_t cap = readq(REG_CAP);
    uint32_t cap_low = 0, vs = readl(REG_VS);
    pread(device, &cap_low, 4, bar0.offset + REG_CAP);
    CHECK((uint32_t)cap == cap_low && (cap >> 37 & 1) && (cap >> 48 & 0xf) == 0, "readq CAP 0x%016llx (§3.1.1: NVM command set, 4 KiB pages; pread agrees)", (unsigned long long)cap);
    doorbell_stride = 4u << (cap >> 32 & 0xf);
    timeout_ms = 500 * (unsigned)(cap >> 24 & 0xff);
    CHECK(vs >= 0x00010400, "readl VS: NVMe %u.%u.%u", vs >> 16, vs >> 8 & 0xff, vs & 0xff);

    // §7.6.1: disable, wait for RDY = 0.
    writel(REG_CC, readl(REG_CC) & ~1u);
    CHECK(wait_csts(CSTS_RDY, 0) == 0, "CC.EN = 0, CSTS.RDY = 0");

    dma = mmap(NULL, DMA_SIZE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    struct vfio_iommu_type1_dma_map map = {.argsz = sizeof(map), .flags = VFIO_DMA_MAP_FLAG_READ | VFIO_DMA_MAP_FLAG_WRITE, .vaddr = (uintptr_t)dma, .iova = dma_iova, .size = DMA_SIZE};
    CHECK(dma != MAP_FAILED && ioctl(container, VFIO_IOMMU_MAP_DMA, &map) == 0, "MAP_DMA %u KiB for queues and buffers at IOVA 0x%llx", DMA_SIZE >> 10, (unsigned long long)dma_iova);

    // Admin queues (§3.1.8–10), the base addresses written as qwords.
    writel(REG_AQA, (admin_entries - 1) << 16 | (admin_entries - 1));
    writeq(REG_ASQ, iova(ADMIN_SQ));
    writeq(REG_ACQ, iova(ADMIN_CQ));
    CHECK(readq(REG_ASQ) == iova(ADMIN_SQ) && readq(REG_ACQ) == iova(ADMIN_CQ) && readl(REG_AQA) == ((admin_entries - 1) * 0x10001), "AQA, ASQ, ACQ written (writeq) and read back (readq)");

    int efd[2] = {eventfd(0, EFD_NONBLOCK), eventfd(0, EFD_NONBLOCK)};
    CHECK(set_msix(device, 2, efd) == 0, "SET_IRQS: MSI-X vectors 0 (admin) and 1 (I/O queue 1) on eventfds");

    // Enable: NVM command set, 4 KiB pages, round robin, 64-byte SQ and 16-byte CQ entries.
    writel(REG_CC, 4u << 20 | 6u << 16 | 1);
    CHECK(wait_csts(CSTS_RDY, CSTS_RDY) == 0, "CC.EN = 1, CSTS.RDY = 1 within CAP.TO (%u ms)", timeout_ms);

    // Identify controller (§5.15.2.2).
    uint8_t *id = dma + IDENTIFY;
    int status = admin_command(ADM_IDENTIFY, 0, iova(IDENTIFY), 0x01, 0, NULL);
    char model[41] = {0}, serial[21] = {0}, firmware[9] = {0};
    memcpy(serial, id + 4, 20);
    memcpy(model, id + 24, 40);
    memcpy(firmware, id + 64, 8);
    trim(serial);
    trim(model);
    trim(firmware);
    uint16_t vid = (uint16_t)(id[0] | id[1] << 8), oncs = (uint16_t)(id[520] | id[521] << 8), oacs = (uint16_t)(id[256] | id[257] << 8);
    uint32_t ver = *(uint32_t *)(id + 80), nn = *(uint32_t *)(id + 516), sgls = *(uint32_t *)(id + 536);
    uint8_t mdts = id[77], aerl = id[259], vwc = id[525];
    CHECK(status == 0 && vid == vendor && ver == vs && nn >= 1 && id[512] == 0x66 && id[513] == 0x44, "Identify controller: VID %04x, VER %08x, NN %u, SQES 0x66, CQES 0x44", vid, ver, nn);
    CHECK(model[0] && serial[0] && firmware[0], "MN \"%s\", SN \"%s\", FR \"%s\"", model, serial, firmware);
    CHECK(mdts >= 1 && !(oacs & 0x100) && sgls == 0 && (vwc & 0x6) == 0x6, "MDTS %u (%u KiB), AERL %u, ONCS 0x%x, VWC 0x%x (Flush to FFFFFFFFh), OACS 0x%x, SGLS 0", mdts, 4u << mdts, aerl, oncs, vwc, oacs);

    // Set Features, Number of Queues (§5.21.1.7): two of each; the grant in DW0.
    uint32_t granted = 0;
    status = admin_command(ADM_SET_FEATURES, 0, 0, 0x07, 1u << 16 | 1u, &granted);
    unsigned nsqa = (granted & 0xffff) + 1, ncqa = (granted >> 16) + 1;
    CHECK(status == 0 && nsqa >= 2 && ncqa >= 2, "Set Features Number of Queues: asked 2/2, DW0 0x%08x grants %u SQs and %u CQs", granted, nsqa, ncqa);
    CHECK(ncqa + 1 <= msix.count, "every granted completion queue has an MSI-X vector of its own (%u + admin <= %u)", ncqa, msix.count);

    // Identify active namespace list (§5.15.2.3), namespace 1 (§5.15.2.1), its descriptors (§5.15.2.4).
    status = admin_command(ADM_IDENTIFY, 0, iova(IDENTIFY), 0x02, 0, NULL);
    CHECK(status == 0 && *(uint32_t *)id == 1, "Identify active namespace list: NSID %u first", *(uint32_t *)id);
    status = admin_command(ADM_IDENTIFY, 1, iova(IDENTIFY), 0x00, 0, NULL);
    uint64_t nsze = *(uint64_t *)id;
    unsigned lbads = id[128 + 4 * (id[26] & 0xf) + 2];
    CHECK(status == 0 && nsze > 0 && lbads == 9, "Identify namespace 1: %llu blocks of %u bytes", (unsigned long long)nsze, 1u << lbads);
    status = admin_command(ADM_IDENTIFY, 1, iova(IDENTIFY), 0x03, 0, NULL);
    int unique = 0;
    char nguid[33] = {0};
    for (int offset = 0; status == 0 && offset + 4 <= 4096 && id[offset]; offset += 4 + id[offset + 1]) {
        if ((id[offset] == 2 || id[offset] == 3) && id[offset + 1] == 16) unique = 1;
        if (id[offset] == 2)
            for (int i = 0; i < 16; i++) sprintf(nguid + 2 * i, "%02x", id[offset + 4 + i]);
    }
    CHECK(status == 0 && unique, "Identify namespace identification descriptor list: NGUID %s", nguid);

    // I/O queues (§5.3, §5.4): pair 1 interrupt-driven on vector 1, pair 2 polled (IEN 0).
    status = admin_command(ADM_CREATE_CQ, 0, iova(IO_CQ1), (io_entries - 1u) << 16 | 1, 1u << 16 | 0x3, NULL);
    CHECK(status == 0, "Create I/O Completion Queue 1 (IEN, vector 1)");
    status = admin_command(ADM_CREATE_SQ, 0, iova(IO_SQ1), (io_entries - 1u) << 16 | 1, 1u << 16 | 0x1, NULL);
    CHECK(status == 0, "Create I/O Submission Queue 1 on CQ 1");
    status = admin_command(ADM_CREATE_CQ, 0, iova(IO_CQ2), (io_entries - 1u) << 16 | 2, 0x1, NULL);
    CHECK(status == 0, "Create I/O Completion Queue 2 (polled: no interrupts)");
    status = admin_command(ADM_CREATE_SQ, 0, iova(IO_SQ2), (io_entries - 1u) << 16 | 2, 2u << 16 | 0x1, NULL);
    CHECK(status == 0, "Create I/O Submission Queue 2 on CQ 2");
    drain(efd[0]);

    // Write 64 blocks from a mid-page buffer on the polled pair: PRP1 + a PRP list (§6.15).
    const uint32_t blocks = 64, lba = 2048, offset = 512;
    for (uint32_t i = 0; i < blocks * 512; i++) dma[WRITE_BUFFER + offset + i] = (uint8_t)(i * 131 + i / 512);
    uint32_t cmd[16];
    data_command(cmd, NVM_WRITE, lba, WRITE_BUFFER + offset, blocks, PRP_LIST_WRITE);
    uint16_t cid = submit(&io2, cmd);
    struct completion c = {0};
    int polled = poll_completion(&io2, &c);
    CHECK(polled == 0 && c.cid == cid && c.status == 0, "Write %u blocks at LBA %u: polled completion (phase tag), status 0x%x", blocks, lba, c.status);
    CHECK(drain(efd[1]) == 0, "the polled queue raised no interrupt");

    // Read them back on the interrupt-driven pair: wait on vector 1's eventfd, then the entry (§6.9).
    memset(dma + READ_BUFFER, 0, 0x20000);
    data_command(cmd, NVM_READ, lba, READ_BUFFER + offset, blocks, PRP_LIST_READ);
    cid = submit(&io1, cmd);
    struct pollfd pfd = {.fd = efd[1], .events = POLLIN};
    int fired = poll(&pfd, 1, 2000) == 1 && (pfd.revents & POLLIN);
    uint64_t count = drain(efd[1]);
    CHECK(fired && count == 1 && completion_ready(&io1), "MSI-X vector 1 fired on its eventfd (count %llu) with the Read's completion posted", (unsigned long long)count);
    c = completion_ready(&io1) ? take(&io1) : (struct completion){.status = 0xffff};
    CHECK(c.cid == cid && c.status == 0, "Read %u blocks at LBA %u: interrupt-driven completion, status 0x%x", blocks, lba, c.status);
    CHECK(memcmp(dma + WRITE_BUFFER + offset, dma + READ_BUFFER + offset, blocks * 512) == 0, "the blocks read back are the pattern written");

    // Flush namespace 1, then every namespace (NSID FFFFFFFFh, VWC bits 2:1) (§6.8).
    memset(cmd, 0, sizeof(cmd));
    cmd[0] = NVM_FLUSH;
    cmd[1] = 1;
    cid = submit(&io2, cmd);
    CHECK(poll_completion(&io2, &c) == 0 && c.cid == cid && c.status == 0, "Flush namespace 1");
    cmd[0] = NVM_FLUSH;
    cmd[1] = 0xffffffff;
    cid = submit(&io2, cmd);
    CHECK(poll_completion(&io2, &c) == 0 && c.cid == cid && c.status == 0, "Flush NSID FFFFFFFFh (all namespaces)");

    // An Asynchronous Event Request stays outstanding (§5.2): the Get Features after it completes,
    // it does not.
    uint32_t aer[16] = {ADM_AER};
    uint16_t aer_cid = submit(&admin, aer);
    uint32_t current = 0;
    status = admin_command(ADM_GET_FEATURES, 0, 0, 0x07, 0, &current);
    CHECK(status == 0 && current == granted, "Get Features Number of Queues after the AER: DW0 0x%08x, the grant", current);
    usleep(10000);
    CHECK(!completion_ready(&admin), "the Asynchronous Event Request (CID %u) is still outstanding: nothing more on the admin completion queue", aer_cid);

    // SMART / Health Information (§5.14.1.2), 512 bytes, controller-wide.
    status = admin_command(ADM_GET_LOG, 0xffffffff, iova(LOG), 127u << 16 | 0x02, 0, NULL);
    uint8_t *smart = dma + LOG;
    unsigned kelvin = smart[1] | smart[2] << 8;
    uint64_t units_written = *(uint64_t *)(smart + 48), writes = *(uint64_t *)(smart + 80);
    CHECK(status == 0 && kelvin > 273 && units_written >= 1 && writes >= 1, "SMART/Health log: %u K, %llu data units and %llu Write commands written, critical warning 0x%x", kelvin, (unsigned long long)units_written, (unsigned long long)writes, smart[0]);

    // Teardown: submission queues first, then their completion queues (§5.6, §5.5), then a normal
    // shutdown (§7.6.2): CC.SHN = 01b, wait for CSTS.SHST = 10b; then disable.
    int deleted = admin_command(ADM_DELETE_SQ, 0, 0, 2, 0, NULL) == 0 && admin_command(ADM_DELETE_SQ, 0, 0, 1, 0, NULL) == 0 &&
                  admin_command(ADM_DELETE_CQ, 0, 0, 2, 0, NULL) == 0 && admin_command(ADM_DELETE_CQ, 0, 0, 1, 0, NULL) == 0;
    CHECK(deleted, "Delete I/O Submission Queues 2 and 1, then Completion Queues 2 and 1");
    writel(REG_CC, (readl(REG_CC) & ~0xc000u) | 1u << 14);
    CHECK(wait_csts(CSTS_SHST_MASK, CSTS_SHST_COMPLETE) == 0, "CC.SHN = 01b: CSTS.SHST = 10b, shutdown complete");
    writel(REG_CC, 0);
    CHECK(wait_csts(CSTS_RDY, 0) == 0, "CC.EN = 0, CSTS.RDY = 0");
    CHECK(set_msix(device, 0, NULL) == 0, "SET_IRQS: MSI-X off");
    struct vfio_iommu_type1_dma_unmap unmap = {.argsz = sizeof(unmap), .iova = dma_iova, .size = DMA_SIZE};
    CHECK(ioctl(container, VFIO_IOMMU_UNMAP_DMA, &unmap) == 0 && unmap.size == DMA_SIZE, "UNMAP_DMA");
    munmap((void *)bar, bar0.size);
    CHECK(close(device) == 0 && close(group) == 0 && close(container) == 0, "close device, group and container");

    printf("1..%d\n# nvme bring-up of %s: %s\n# %d of %d checks failed\n", checks, bdf, failures ? "FAILED" : "complete", failures, checks);
    return failures ? 1 : 0;
}
