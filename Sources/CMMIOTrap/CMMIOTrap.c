#define _GNU_SOURCE
#include "CMMIOTrap.h"

#include <dlfcn.h>
#include <errno.h>
#include <setjmp.h>
#include <pthread.h>
#include <signal.h>
#include <string.h>
#include <ucontext.h>
#include <sys/mman.h>
#include <sys/uio.h>
#include <unistd.h>

#ifndef __has_feature
#define __has_feature(x) 0
#endif
#if __has_feature(thread_sanitizer) || defined(__SANITIZE_THREAD__) || __has_feature(address_sanitizer) || defined(__SANITIZE_ADDRESS__)
#define SANITIZED 1
#endif

// Signal-handler code, called by the preload library's interposers before a sanitizer's runtime
// has initialised: not instrumented, like a sanitizer runtime itself.
#if defined(__clang__)
#pragma clang attribute push(__attribute__((disable_sanitizer_instrumentation)), apply_to = function)
#endif

// ---------------------------------------------------------------- the window table
// Read from the signal handler without a lock: a slot is published by storing its `end` last
// and retired by clearing its `start` first. Writers hold `table_lock`.

#define MAX_WINDOWS 1024

struct window {
    uintptr_t start;  // 0: free
    uintptr_t end;
    uint64_t cookie;
    uint64_t offset;
    int writable;
    int zapped;  // a zapped device-RAM mapping (vfio_pci_zap_bars), not a register window
};

static struct window windows[MAX_WINDOWS];
// One past the highest slot ever used: lookups scan no further.
static int slots_used;
static pthread_mutex_t table_lock = PTHREAD_MUTEX_INITIALIZER;

static int add_locked(uintptr_t start, uintptr_t end, uint64_t cookie, uint64_t offset, int writable, int zapped) {
    for (int i = 0; i < MAX_WINDOWS; i++) {
        if (__atomic_load_n(&windows[i].start, __ATOMIC_ACQUIRE) != 0) continue;
        windows[i].cookie = cookie;
        windows[i].offset = offset;
        windows[i].writable = writable;
        windows[i].zapped = zapped;
        __atomic_store_n(&windows[i].end, end, __ATOMIC_RELEASE);
        __atomic_store_n(&windows[i].start, start, __ATOMIC_RELEASE);
        if (i >= __atomic_load_n(&slots_used, __ATOMIC_RELAXED)) __atomic_store_n(&slots_used, i + 1, __ATOMIC_RELEASE);
        return 0;
    }
    errno = ENOSPC;
    return -1;
}

int vfiokit_trap_add(uintptr_t start, size_t length, uint64_t cookie, uint64_t offset, int writable) {
    if (start == 0 || length == 0 || start + length < start) {
        errno = EINVAL;
        return -1;
    }
    pthread_mutex_lock(&table_lock);
    int result = add_locked(start, start + length, cookie, offset, writable, 0);
    pthread_mutex_unlock(&table_lock);
    return result;
}

int vfiokit_zap_add(uintptr_t start, size_t length, uint64_t cookie) {
    if (start == 0 || length == 0 || start + length < start) {
        errno = EINVAL;
        return -1;
    }
    pthread_mutex_lock(&table_lock);
    int result = add_locked(start, start + length, cookie, 0, 0, 1);
    pthread_mutex_unlock(&table_lock);
    return result;
}

int vfiokit_trap_remove(uintptr_t start, size_t length) {
    uintptr_t end = start + length < start ? UINTPTR_MAX : start + length;
    int touched = 0;
    pthread_mutex_lock(&table_lock);
    int used = slots_used;
    for (int i = 0; i < used; i++) {
        struct window w = windows[i];
        if (w.start == 0 || w.end <= start || w.start >= end) continue;
        touched++;
        __atomic_store_n(&windows[i].start, 0, __ATOMIC_RELEASE);
        // The parts outside the removed range stay trapped (the table has room: one slot was freed).
        if (w.start < start) add_locked(w.start, start, w.cookie, w.offset, w.writable, w.zapped);
        if (w.end > end) add_locked(end, w.end, w.cookie, w.offset + (end - w.start), w.writable, w.zapped);
    }
    pthread_mutex_unlock(&table_lock);
    return touched;
}

static const struct window *find(uintptr_t address, struct window *copy) {
    int used = __atomic_load_n(&slots_used, __ATOMIC_ACQUIRE);
    for (int i = 0; i < used; i++) {
        uintptr_t start = __atomic_load_n(&windows[i].start, __ATOMIC_ACQUIRE);
        if (start == 0 || address < start) continue;
        if (address >= __atomic_load_n(&windows[i].end, __ATOMIC_ACQUIRE)) continue;
        *copy = windows[i];
        copy->start = start;
        return copy;
    }
    return NULL;
}

int vfiokit_trap_cookie_in_use(uint64_t cookie) {
    int used = __atomic_load_n(&slots_used, __ATOMIC_ACQUIRE);
    for (int i = 0; i < used; i++) {
        if (__atomic_load_n(&windows[i].start, __ATOMIC_ACQUIRE) != 0 && windows[i].cookie == cookie) return 1;
    }
    return 0;
}

// ---------------------------------------------------------------- x86-64 decoding
// The instruction forms compilers and <asm/io.h> emit for volatile MMIO: MOV r/m (88, 89, 8A, 8B),
// MOV r/m, imm (C6 /0, C7 /0), MOVZX/MOVSX (0F B6, B7, BE, BF), MOVSXD (63), and the reads an
// optimiser folds into a comparison — CMP (38, 39, 3A, 3B, 80 /7, 81 /7, 83 /7) and TEST (84, 85,
// F6 /0, F7 /0) — with legacy prefixes 66/67, segment overrides and REX.

enum access_kind { ACCESS_NONE = 0, ACCESS_LOAD = 1, ACCESS_STORE = 2 };
enum extension { EXTEND_NONE, EXTEND_ZERO, EXTEND_SIGN };
enum operation { OP_MOVE, OP_COMPARE, OP_TEST };

struct instruction {
    enum access_kind kind;
    enum operation operation;
    int width;       // bytes moved to or from memory
    int reg_width;   // bytes of the register operand
    int length;      // instruction bytes
    int reg;         // 0-15; with `high_byte` one of AH, CH, DH, BH
    int high_byte;
    int has_immediate;
    uint64_t immediate;
    int memory_first;  // CMP: memory is the left operand (memory - other)
    enum extension extension;
};

static int decode(const uint8_t *code, struct instruction *insn) {
    memset(insn, 0, sizeof(*insn));
    int i = 0;
    int operand16 = 0, rex = 0;
    for (;; i++) {
        if (i >= 14) return 0;
        uint8_t b = code[i];
        if (b == 0x66) operand16 = 1;
        else if (b == 0x67 || b == 0x2e || b == 0x3e || b == 0x26 || b == 0x36 || b == 0x64 || b == 0x65) continue;
        else break;
    }
    if ((code[i] & 0xf0) == 0x40) rex = code[i++];
    int rex_w = rex & 8, rex_r = (rex & 4) ? 8 : 0;
    int full = rex_w ? 8 : operand16 ? 2 : 4;
    uint8_t op = code[i++];
    int immediate_size = 0, sign_extend_immediate = 0, group = -1;
    insn->kind = ACCESS_LOAD;
    if (op == 0x0f) {
        uint8_t op2 = code[i++];
        insn->reg_width = full;
        switch (op2) {
        case 0xb6: insn->width = 1; insn->extension = EXTEND_ZERO; break;
        case 0xb7: insn->width = 2; insn->extension = EXTEND_ZERO; break;
        case 0xbe: insn->width = 1; insn->extension = EXTEND_SIGN; break;
        case 0xbf: insn->width = 2; insn->extension = EXTEND_SIGN; break;
        default: return 0;
        }
    } else {
        switch (op) {
        case 0x88: insn->kind = ACCESS_STORE; insn->width = 1; break;
        case 0x89: insn->kind = ACCESS_STORE; insn->width = full; break;
        case 0x8a: insn->width = 1; break;
        case 0x8b: insn->width = full; break;
        case 0x63:
            if (!rex_w) return 0;
            insn->width = 4; insn->reg_width = 8; insn->extension = EXTEND_SIGN;
            break;
        case 0xc6: insn->kind = ACCESS_STORE; insn->width = 1; immediate_size = 1; group = 0; break;
        case 0xc7: insn->kind = ACCESS_STORE; insn->width = full; immediate_size = full == 2 ? 2 : 4; sign_extend_immediate = 1; group = 0; break;
        case 0x38: insn->operation = OP_COMPARE; insn->memory_first = 1; insn->width = 1; break;
        case 0x39: insn->operation = OP_COMPARE; insn->memory_first = 1; insn->width = full; break;
        case 0x3a: insn->operation = OP_COMPARE; insn->width = 1; break;
        case 0x3b: insn->operation = OP_COMPARE; insn->width = full; break;
        case 0x80: insn->operation = OP_COMPARE; insn->memory_first = 1; insn->width = 1; immediate_size = 1; group = 7; break;
        case 0x81: insn->operation = OP_COMPARE; insn->memory_first = 1; insn->width = full; immediate_size = full == 2 ? 2 : 4; sign_extend_immediate = 1; group = 7; break;
        case 0x83: insn->operation = OP_COMPARE; insn->memory_first = 1; insn->width = full; immediate_size = 1; sign_extend_immediate = 1; group = 7; break;
        case 0x84: insn->operation = OP_TEST; insn->width = 1; break;
        case 0x85: insn->operation = OP_TEST; insn->width = full; break;
        case 0xf6: insn->operation = OP_TEST; insn->width = 1; immediate_size = 1; group = 0; break;
        case 0xf7: insn->operation = OP_TEST; insn->width = full; immediate_size = full == 2 ? 2 : 4; sign_extend_immediate = 1; group = 0; break;
        default: return 0;
        }
        if (!insn->reg_width) insn->reg_width = insn->width;
    }
    uint8_t modrm = code[i++];
    int mod = modrm >> 6, reg = (modrm >> 3) & 7, rm = modrm & 7;
    if (mod == 3) return 0;  // a register operand: not a memory access
    if (group >= 0 && reg != group) return 0;
    if (rm == 4) {
        uint8_t sib = code[i++];
        if (mod == 0 && (sib & 7) == 5) i += 4;
    } else if (mod == 0 && rm == 5) {
        i += 4;  // RIP-relative
    }
    if (mod == 1) i += 1;
    if (mod == 2) i += 4;
    if (immediate_size) {
        uint64_t value = 0;
        for (int k = 0; k < immediate_size; k++) value |= (uint64_t)code[i + k] << (8 * k);
        // A shorter immediate is sign-extended to the operand (imm8 of 83, imm32 with REX.W).
        if (sign_extend_immediate && (value >> (8 * immediate_size - 1)) & 1) value |= ~0ull << (8 * immediate_size);
        insn->has_immediate = 1;
        insn->immediate = value;
        i += immediate_size;
    } else {
        insn->reg = reg + rex_r;
        // Without REX, byte registers 4-7 are AH, CH, DH, BH.
        insn->high_byte = insn->width == 1 && insn->reg_width == 1 && !rex && reg >= 4;
        if (insn->high_byte) insn->reg = reg - 4;
    }
    if (i > 15) return 0;
    insn->length = i;
    return insn->kind;
}

int vfiokit_trap_decode(const uint8_t *code, int *width, int *length) {
    struct instruction insn;
    int kind = decode(code, &insn);
    if (kind == ACCESS_NONE) return 0;
    if (width) *width = insn.width;
    if (length) *length = insn.length;
    return kind;
}

// ---------------------------------------------------------------- the handler

#if defined(__x86_64__)
// ModRM register numbers to ucontext's general registers.
static const int greg_of[16] = {REG_RAX, REG_RCX, REG_RDX, REG_RBX, REG_RSP, REG_RBP, REG_RSI, REG_RDI,
                                REG_R8,  REG_R9,  REG_R10, REG_R11, REG_R12, REG_R13, REG_R14, REG_R15};

static uint64_t mask_of(int width) { return width == 8 ? ~0ull : (1ull << (8 * width)) - 1; }

static uint64_t register_value(ucontext_t *uc, const struct instruction *insn) {
    uint64_t value = (uint64_t)uc->uc_mcontext.gregs[greg_of[insn->reg]];
    if (insn->high_byte) value >>= 8;
    return value & mask_of(insn->width);
}

static void set_register(ucontext_t *uc, const struct instruction *insn, uint64_t loaded) {
    greg_t *slot = &uc->uc_mcontext.gregs[greg_of[insn->reg]];
    uint64_t value = loaded & mask_of(insn->width);
    if (insn->extension == EXTEND_SIGN && (value >> (8 * insn->width - 1)) & 1) value |= ~mask_of(insn->width);
    value &= mask_of(insn->reg_width);
    if (insn->high_byte) {
        *slot = (greg_t)(((uint64_t)*slot & ~0xff00ull) | (value << 8));
    } else if (insn->reg_width >= 4) {
        *slot = (greg_t)value;  // a 32-bit destination zero-extends into the whole register
    } else {
        *slot = (greg_t)(((uint64_t)*slot & ~mask_of(insn->reg_width)) | value);
    }
}
#endif

#if defined(__x86_64__)
// EFLAGS after CMP (left - right) or TEST (left & right) of `width` bytes: CF PF AF ZF SF OF.
static uint64_t compare_flags(uint64_t flags, enum operation operation, uint64_t left, uint64_t right, int width) {
    uint64_t mask = mask_of(width), sign = 1ull << (8 * width - 1);
    left &= mask;
    right &= mask;
    uint64_t result = (operation == OP_TEST ? left & right : left - right) & mask;
    flags &= ~(uint64_t)(0x1 | 0x4 | 0x10 | 0x40 | 0x80 | 0x800);
    if (operation == OP_COMPARE) {
        if (left < right) flags |= 0x1;                         // CF
        if ((left ^ right ^ result) & 0x10) flags |= 0x10;      // AF
        if ((left ^ right) & (left ^ result) & sign) flags |= 0x800;  // OF
    }
    if (!__builtin_parity((unsigned)(result & 0xff))) flags |= 0x4;  // PF: even parity
    if (result == 0) flags |= 0x40;                                  // ZF
    if (result & sign) flags |= 0x80;                                // SF
    return flags;
}

// What the instruction does with the value the device returned.
static void complete_load(ucontext_t *uc, const struct instruction *insn, uint64_t loaded) {
    if (insn->operation == OP_MOVE) {
        set_register(uc, insn, loaded);
        return;
    }
    uint64_t other = insn->has_immediate ? insn->immediate : register_value(uc, insn);
    uint64_t left = insn->memory_first || insn->operation == OP_TEST ? loaded : other;
    uint64_t right = insn->memory_first || insn->operation == OP_TEST ? other : loaded;
    uc->uc_mcontext.gregs[REG_EFL] = (greg_t)compare_flags((uint64_t)uc->uc_mcontext.gregs[REG_EFL], insn->operation, left, right, insn->width);
}

// An access the trap cannot emulate: said on stderr (write(2) is async-signal-safe), then the
// program's SIGSEGV, as an access the kernel cannot satisfy would be.
static void report_undecodable(const uint8_t *rip) {
    char line[160];
    static const char hex[] = "0123456789abcdef";
    int n = 0;
    const char *head = "vfiokit: cannot emulate the instruction at ";
    for (const char *c = head; *c; c++) line[n++] = *c;
    for (int shift = 44; shift >= 0; shift -= 4) line[n++] = hex[((uintptr_t)rip >> shift) & 0xf];
    const char *mid = " touching a trapped BAR (bytes";
    for (const char *c = mid; *c; c++) line[n++] = *c;
    for (int k = 0; k < 8; k++) { line[n++] = ' '; line[n++] = hex[rip[k] >> 4]; line[n++] = hex[rip[k] & 0xf]; }
    const char *tail = "): SIGSEGV\n";
    for (const char *c = tail; *c; c++) line[n++] = *c;
    ssize_t ignored = write(2, line, (size_t)n);
    (void)ignored;
}
#endif

static vfiokit_mmio_access_fn access_fn;
// libc's own sigaction, past any interposer loaded before this code (the preload library's, a
// sanitizer's): what installs the trap and what restores a signal's default action.
static int (*libc_sigaction)(int, const struct sigaction *, struct sigaction *);

static void resolve_libc_sigaction(void) {
    if (!libc_sigaction) libc_sigaction = dlsym(RTLD_NEXT, "sigaction");
    if (!libc_sigaction) libc_sigaction = sigaction;
}

// ---------------------------------------------------------------- fault-recovering user accesses
// copy_from_user/copy_to_user without a system call: the copy runs with this thread's recovery
// point armed, and a fault inside it returns there instead of reaching the program.

struct recovery {
    sigjmp_buf point;
    volatile int armed;
    // The address whose access faulted, for the copy that asks where (vfiokit_dma_copy).
    volatile uintptr_t fault_address;
};
static __thread struct recovery recovery __attribute__((tls_model("initial-exec")));

#ifndef SANITIZED
static void ensure_installed(void);
#endif

#ifndef SANITIZED
// After a fault left the handler by siglongjmp, SIGSEGV and SIGBUS are still blocked.
static void unblock_fault_signals(void) {
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGSEGV);
    sigaddset(&set, SIGBUS);
    pthread_sigmask(SIG_UNBLOCK, &set, NULL);
}
#endif

#ifdef SANITIZED
// Under a sanitizer, whose runtime keeps its own books across every signal and jump, the copies go
// through the kernel instead (process_vm_readv/writev on this process; madvise populating pages as
// get_user_pages does): slower, the same answers, no signal.
int vfiokit_user_copy(void *to, const void *from, size_t length) {
    struct iovec local = {to, length}, remote = {(void *)from, length};
    if (length == 0) return 0;
    ssize_t copied = process_vm_readv(getpid(), &local, 1, &remote, 1, 0);
    if (copied == (ssize_t)length) return 0;
    // The destination may be the user's side: write it instead.
    local = (struct iovec){(void *)from, length};
    remote = (struct iovec){to, length};
    copied = process_vm_writev(getpid(), &local, 1, &remote, 1, 0);
    return copied == (ssize_t)length ? 0 : -EFAULT;
}

long vfiokit_user_strnlen(uintptr_t address, size_t limit, size_t *faulted) {
    for (size_t n = 0; n < limit; n++) {
        char c;
        if (vfiokit_user_copy(&c, (const void *)(address + n), 1) != 0) {
            *faulted = n;
            return -EFAULT;
        }
        if (c == 0) return (long)n;
    }
    return (long)limit;
}

int vfiokit_user_touch(uintptr_t start, size_t length, int write) {
    if (length == 0) return 0;
    uintptr_t page = start & ~(uintptr_t)4095;
    // MADV_POPULATE_READ (22) / MADV_POPULATE_WRITE (23), Linux 5.14.
    return madvise((void *)page, (start + length) - page, write ? 23 : 22) == 0 ? 0 : -EFAULT;
}

// A sanitizer's runtime owns the fault signals: a device's copy is a plain one there.
int vfiokit_dma_copy(void *to, const void *from, size_t length, uintptr_t *fault_address) {
    (void)fault_address;
    memcpy(to, from, length);
    return 0;
}
#else
#if defined(__x86_64__)
// The kernel's way (copy_user_generic's `rep movsb` and its exception-table entry): one copy
// instruction whose address the fault handler knows; a fault in it resumes at the fixup label
// with RCX holding the bytes not copied. No sigsetjmp per copy: every ioctl struct crosses here.
extern const char vfiokit_copy_instruction[] __attribute__((visibility("hidden")));
extern const char vfiokit_copy_fixup[] __attribute__((visibility("hidden")));

__attribute__((noinline)) int vfiokit_dma_copy(void *to, const void *from, size_t length, uintptr_t *fault_address) {
    ensure_installed();
    size_t left = length;
    __asm__ volatile(
        ".globl vfiokit_copy_instruction\n.hidden vfiokit_copy_instruction\n"
        ".globl vfiokit_copy_fixup\n.hidden vfiokit_copy_fixup\n"
        "vfiokit_copy_instruction: rep movsb\n"
        "vfiokit_copy_fixup:\n"
        : "+D"(to), "+S"(from), "+c"(left)
        :
        : "memory");
    if (left == 0) return 0;
    *fault_address = recovery.fault_address;
    return -EFAULT;
}
#else
int vfiokit_dma_copy(void *to, const void *from, size_t length, uintptr_t *fault_address) {
    ensure_installed();
    if (sigsetjmp(recovery.point, 0) != 0) {
        recovery.armed = 0;
        unblock_fault_signals();
        *fault_address = recovery.fault_address;
        return -EFAULT;
    }
    recovery.armed = 1;
    memcpy(to, from, length);
    __asm__ volatile("" ::: "memory");
    recovery.armed = 0;
    return 0;
}
#endif

// The same guarded copy; the kernel's copy_*_user report no address.
int vfiokit_user_copy(void *to, const void *from, size_t length) {
    uintptr_t fault_address;
    return vfiokit_dma_copy(to, from, length, &fault_address);
}

long vfiokit_user_strnlen(uintptr_t address, size_t limit, size_t *faulted) {
    ensure_installed();
    volatile size_t n = 0;  // read again after a fault returns through siglongjmp
    if (sigsetjmp(recovery.point, 0) != 0) {
        recovery.armed = 0;
        unblock_fault_signals();
        *faulted = n;
        return -EFAULT;
    }
    recovery.armed = 1;
    while (n < limit && *(volatile const char *)(address + n) != 0) n++;
    recovery.armed = 0;
    return (long)n;
}

// A locked write of the byte's own value: a write fault where the page is not writable, copy-on-
// write broken where it is, and no lost update from a thread writing the byte meanwhile. Written
// as an instruction: compilers turn an atomic add of zero into a plain load.
static inline void write_nothing(volatile uint8_t *at) {
#if defined(__x86_64__)
    __asm__ volatile("lock orb $0, %0" : "+m"(*at) : : "memory");
#else
    uint8_t expected = *at;
    while (!__atomic_compare_exchange_n(at, &expected, expected, 0, __ATOMIC_RELAXED, __ATOMIC_RELAXED)) {}
#endif
}

int vfiokit_user_touch(uintptr_t start, size_t length, int write) {
    ensure_installed();
    if (length == 0) return 0;
    if (sigsetjmp(recovery.point, 0) != 0) {
        recovery.armed = 0;
        unblock_fault_signals();
        return -EFAULT;
    }
    recovery.armed = 1;
    uintptr_t page = start & ~(uintptr_t)4095, last = start + (length - 1);
    for (;; page += 4096) {
        uintptr_t at = page < start ? start : page;
        if (write) write_nothing((volatile uint8_t *)at);
        else (void)*(volatile const uint8_t *)at;
        if (page >= (last & ~(uintptr_t)4095)) break;
    }
    recovery.armed = 0;
    return 0;
}
#endif
static struct sigaction next_handler[2];  // SIGSEGV, SIGBUS
static pthread_mutex_t install_lock = PTHREAD_MUTEX_INITIALIZER;
static int installed;

static int slot_of(int sig) { return sig == SIGBUS ? 1 : 0; }

// A fault the trap does not own goes to the program's handler; with none, the default action
// runs when the faulting instruction executes again (a core dump at the right place).
// The program's handler runs with the mask the kernel would give it: its sa_mask, and the signal
// itself unless it asked for SA_NODEFER (the trap's own handler defers nothing). A handler that
// leaves by siglongjmp keeps the mask its jump restores, as on Linux.
static void chain(int sig, siginfo_t *info, void *context, int synthesized) {
    struct sigaction next = next_handler[slot_of(sig)];
    int handled = (next.sa_flags & SA_SIGINFO) ? next.sa_sigaction != NULL : next.sa_handler != SIG_DFL && next.sa_handler != SIG_IGN;
    if (handled) {
        sigset_t during = next.sa_mask, before;
        if (!(next.sa_flags & SA_NODEFER)) sigaddset(&during, sig);
        pthread_sigmask(SIG_BLOCK, &during, &before);
        if (next.sa_flags & SA_SIGINFO) next.sa_sigaction(sig, info, context);
        else next.sa_handler(sig);
        pthread_sigmask(SIG_SETMASK, &before, NULL);
        return;
    }
    struct sigaction default_action;
    memset(&default_action, 0, sizeof(default_action));
    default_action.sa_handler = SIG_DFL;
    sigemptyset(&default_action.sa_mask);
    libc_sigaction(sig, &default_action, NULL);
    // A sent signal, or one the trap synthesised, would not come back by itself.
    if (synthesized || info->si_code <= 0) raise(sig);
}

static vfiokit_refault_fn refault_fn;

static void on_fault(int sig, siginfo_t *info, void *context) {
#if defined(__x86_64__) && !defined(SANITIZED)
    ucontext_t *interrupted = context;
    if (info->si_code > 0 && interrupted->uc_mcontext.gregs[REG_RIP] == (greg_t)(uintptr_t)vfiokit_copy_instruction) {
        recovery.fault_address = (uintptr_t)info->si_addr;
        interrupted->uc_mcontext.gregs[REG_RIP] = (greg_t)(uintptr_t)vfiokit_copy_fixup;
        return;
    }
#endif
    if (recovery.armed && info->si_code > 0) {
        recovery.fault_address = (uintptr_t)info->si_addr;
        siglongjmp(recovery.point, 1);
    }
#if defined(__x86_64__)
    struct window w;
    uintptr_t address = (uintptr_t)info->si_addr;
    ucontext_t *uc = context;
    vfiokit_mmio_access_fn fn = __atomic_load_n(&access_fn, __ATOMIC_ACQUIRE);
    vfiokit_refault_fn refault = __atomic_load_n(&refault_fn, __ATOMIC_ACQUIRE);
    if (sig == SIGSEGV && info->si_code > 0 && find(address, &w) && w.zapped) {
        // A zapped device-RAM mapping: the fault maps it again (the instruction then re-executes)
        // or is the program's SIGBUS (vfio_pci_mmap_huge_fault with memory decode off, VPCI-102).
        int deliver = refault ? refault(w.cookie) : SIGBUS;
        if (deliver == 0) return;
        info->si_signo = deliver;
        info->si_code = BUS_ADRERR;
        chain(deliver, info, context, 1);
        return;
    }
    if (sig == SIGSEGV && info->si_code > 0 && fn && find(address, &w)) {
        struct instruction insn;
        const uint8_t *rip = (const uint8_t *)uc->uc_mcontext.gregs[REG_RIP];
        int kind = decode(rip, &insn);
        if (kind != ACCESS_NONE && (kind == ACCESS_LOAD || w.writable)) {
            uint64_t value = kind == ACCESS_STORE ? (insn.has_immediate ? insn.immediate & mask_of(insn.width) : register_value(uc, &insn)) : 0;
            int deliver = fn(w.cookie, w.offset + (address - w.start), insn.width, kind == ACCESS_STORE, &value);
            if (deliver == 0) {
                if (kind == ACCESS_LOAD) complete_load(uc, &insn, value);
                uc->uc_mcontext.gregs[REG_RIP] += insn.length;
                return;
            }
            // vfio_pci_mmap_huge_fault: VM_FAULT_SIGBUS, BUS_ADRERR at the address.
            info->si_signo = deliver;
            info->si_code = BUS_ADRERR;
            chain(deliver, info, context, 1);
            return;
        }
        if (kind == ACCESS_NONE) report_undecodable(rip);
    }
#endif
    chain(sig, info, context, 0);
}

static int install_locked(void) {
    int result = 0;
    if (!installed) {
        struct sigaction action;
        memset(&action, 0, sizeof(action));
        action.sa_sigaction = on_fault;
        // Not SA_ONSTACK: emulation runs the device model, deeper than an alternate signal stack.
        // SA_NODEFER: a register store emulated here can start the device's DMA, whose guarded
        // copy (vfiokit_dma_copy) must be able to fault and recover inside this handler; with
        // the signal blocked the kernel would kill the process instead.
        action.sa_flags = SA_SIGINFO | SA_NODEFER;
        sigemptyset(&action.sa_mask);
        // Past any interposer: a sanitizer's runtime would otherwise take the handler over as "the
        // program's" and lose it to the program's next sigaction; the preload library's interposer
        // keeps the trap in front itself.
        resolve_libc_sigaction();
        if (libc_sigaction(SIGSEGV, &action, &next_handler[0]) != 0 || libc_sigaction(SIGBUS, &action, &next_handler[1]) != 0) result = -1;
        else __atomic_store_n(&installed, 1, __ATOMIC_RELEASE);
    }
    return result;
}

#ifndef SANITIZED
static void ensure_installed(void) {
    if (__atomic_load_n(&installed, __ATOMIC_ACQUIRE)) return;
    pthread_mutex_lock(&install_lock);
    install_locked();
    pthread_mutex_unlock(&install_lock);
}
#endif

int vfiokit_trap_install(vfiokit_mmio_access_fn fn) {
#if !defined(__x86_64__)
    (void)fn;
    errno = ENOSYS;  // the decoder speaks x86-64 only
    return -1;
#else
    pthread_mutex_lock(&install_lock);
    __atomic_store_n(&access_fn, fn, __ATOMIC_RELEASE);
    int result = install_locked();
    pthread_mutex_unlock(&install_lock);
    return result;
#endif
}

int vfiokit_zap_install(vfiokit_refault_fn refault) {
#if !defined(__x86_64__)
    (void)refault;
    errno = ENOSYS;
    return -1;
#else
    pthread_mutex_lock(&install_lock);
    __atomic_store_n(&refault_fn, refault, __ATOMIC_RELEASE);
    int result = install_locked();
    pthread_mutex_unlock(&install_lock);
    return result;
#endif
}

int vfiokit_trap_set_next(int sig, const void *action, void *old) {
    if (sig != SIGSEGV && sig != SIGBUS) {
        errno = EINVAL;
        return -1;
    }
    pthread_mutex_lock(&install_lock);
    if (old) memcpy(old, &next_handler[slot_of(sig)], sizeof(struct sigaction));
    if (action) memcpy(&next_handler[slot_of(sig)], action, sizeof(struct sigaction));
    pthread_mutex_unlock(&install_lock);
    return 0;
}

int vfiokit_trap_is_installed(void) { return __atomic_load_n(&installed, __ATOMIC_ACQUIRE); }

const char *vfiokit_sanitizer(void) {
#if __has_feature(thread_sanitizer) || defined(__SANITIZE_THREAD__)
    return "tsan";
#elif __has_feature(address_sanitizer) || defined(__SANITIZE_ADDRESS__)
    return "asan";
#else
    return NULL;
#endif
}

#if defined(__clang__)
#pragma clang attribute pop
#endif
