// The pieces of userspace RCU (liburcu's "memb" flavour) that Swift cannot express itself: a
// per-thread pointer and a global counter read without a call, a fence that only stops the
// compiler, and membarrier(2). `DMAQuiescence` (Sources/IOMMU/DMA) builds DMA's read side on them.
#ifndef VFIOKIT_CRCU_H
#define VFIOKIT_CRCU_H

/// The calling thread's DMA reader slot (an unretained Swift object), NULL until its first transfer.
/// Initial-exec: read with one instruction off the thread pointer, not through `__tls_get_addr`
/// (the module is linked into the program or a library loaded with it, as liburcu's are).
extern __thread void *vfiokit_rcu_reader __attribute__((tls_model("initial-exec")));

static inline void *vfiokit_rcu_reader_get(void) { return vfiokit_rcu_reader; }

static inline void vfiokit_rcu_reader_set(void *reader) { vfiokit_rcu_reader = reader; }

/// The grace periods begun so far (liburcu's `rcu_gp`): a value cached inside one transfer is
/// valid in a later one only if no grace period began in between.
extern unsigned long long vfiokit_rcu_grace_periods;

static inline unsigned long long vfiokit_rcu_grace_period(void) {
    return __atomic_load_n(&vfiokit_rcu_grace_periods, __ATOMIC_ACQUIRE);
}

static inline void vfiokit_rcu_begin_grace_period(void) {
    __atomic_add_fetch(&vfiokit_rcu_grace_periods, 1, __ATOMIC_SEQ_CST);
}

/// `barrier()`: no memory access moves across it at compile time; the CPU is not fenced.
static inline void vfiokit_rcu_compiler_barrier(void) { __atomic_signal_fence(__ATOMIC_SEQ_CST); }

/// `READ_ONCE` with acquire order, for an entry a writer may be changing under a reader that
/// holds no lock (an I/O page-table entry walked by a device): the whole entry or none of it, and
/// what it links to is read after it.
static inline unsigned long long vfiokit_rcu_dereference(const unsigned long long *entry) {
    return __atomic_load_n(entry, __ATOMIC_ACQUIRE);
}

/// `rcu_assign_pointer`: stores an entry lock-free readers may load, after everything written
/// before it (a table is filled before it is linked).
static inline void vfiokit_rcu_assign(unsigned long long *entry, unsigned long long value) {
    __atomic_store_n(entry, value, __ATOMIC_RELEASE);
}

/// Registers the process for MEMBARRIER_CMD_PRIVATE_EXPEDITED: 0, or -errno when the kernel lacks
/// it (before Linux 4.14, or filtered by seccomp).
int vfiokit_rcu_membarrier_register(void);

/// `smp_mb()` on every CPU running a thread of this process (an IPI each): 0 or -errno.
int vfiokit_rcu_membarrier(void);

#endif
