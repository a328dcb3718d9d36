#define _GNU_SOURCE
#include "CMMIOTrap.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <string.h>
#include <ucontext.h>

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
};

static struct window windows[MAX_WINDOWS];
static pthread_mutex_t table_lock = PTHREAD_MUTEX_INITIALIZER;

static int add_locked(uintptr_t start, uintptr_t end, uint64_t cookie, uint64_t offset, int writable) {
    for (int i = 0; i < MAX_WINDOWS; i++) {
        if (__atomic_load_n(&windows[i].start, __ATOMIC_ACQUIRE) != 0) continue;
        windows[i].cookie = cookie;
        windows[i].offset = offset;
        windows[i].writable = writable;
        __atomic_store_n(&windows[i].end, end, __ATOMIC_RELEASE);
        __atomic_store_n(&windows[i].start, start, __ATOMIC_RELEASE);
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
    int result = add_locked(start, start + length, cookie, offset, writable);
    pthread_mutex_unlock(&table_lock);
    return result;
}

int vfiokit_trap_remove(uintptr_t start, size_t length) {
    uintptr_t end = start + length < start ? UINTPTR_MAX : start + length;
    int touched = 0;
    pthread_mutex_lock(&table_lock);
    for (int i = 0; i < MAX_WINDOWS; i++) {
        struct window w = windows[i];
        if (w.start == 0 || w.end <= start || w.start >= end) continue;
        touched++;
        __atomic_store_n(&windows[i].start, 0, __ATOMIC_RELEASE);
        // The parts outside the removed range stay trapped (the table has room: one slot was freed).
        if (w.start < start) add_locked(w.start, start, w.cookie, w.offset, w.writable);
        if (w.end > end) add_locked(end, w.end, w.cookie, w.offset + (end - w.start), w.writable);
    }
    pthread_mutex_unlock(&table_lock);
    return touched;
}

static const struct window *find(uintptr_t address, struct window *copy) {
    for (int i = 0; i < MAX_WINDOWS; i++) {
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
    for (int i = 0; i < MAX_WINDOWS; i++) {
        if (__atomic_load_n(&windows[i].start, __ATOMIC_ACQUIRE) != 0 && windows[i].cookie == cookie) return 1;
    }
    return 0;
}

int vfiokit_trap_lookup(uintptr_t address, uint64_t *cookie) {
    struct window w;
    if (!find(address, &w)) return 0;
    if (cookie) *cookie = w.cookie;
    return 1;
}

// ---------------------------------------------------------------- x86-64 decoding
// The instruction forms compilers and <asm/io.h> emit for volatile MMIO: MOV r/m (88, 89, 8A, 8B),
// MOV r/m, imm (C6 /0, C7 /0), MOVZX/MOVSX (0F B6, B7, BE, BF) and MOVSXD (63), with legacy
// prefixes 66/67, segment overrides and REX.

enum access_kind { ACCESS_NONE = 0, ACCESS_LOAD = 1, ACCESS_STORE = 2 };
enum extension { EXTEND_NONE, EXTEND_ZERO, EXTEND_SIGN };

struct instruction {
    enum access_kind kind;
    int width;       // bytes moved to or from memory
    int reg_width;   // bytes of the register operand
    int length;      // instruction bytes
    int reg;         // 0-15; with `high_byte` one of AH, CH, DH, BH
    int high_byte;
    int has_immediate;
    uint64_t immediate;
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
    int immediate_size = 0;
    if (op == 0x0f) {
        uint8_t op2 = code[i++];
        insn->kind = ACCESS_LOAD;
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
        case 0x8a: insn->kind = ACCESS_LOAD; insn->width = 1; break;
        case 0x8b: insn->kind = ACCESS_LOAD; insn->width = full; break;
        case 0x63:
            if (!rex_w) return 0;
            insn->kind = ACCESS_LOAD; insn->width = 4; insn->reg_width = 8; insn->extension = EXTEND_SIGN;
            break;
        case 0xc6: insn->kind = ACCESS_STORE; insn->width = 1; insn->has_immediate = 1; immediate_size = 1; break;
        case 0xc7: insn->kind = ACCESS_STORE; insn->width = full; insn->has_immediate = 1; immediate_size = full == 2 ? 2 : 4; break;
        default: return 0;
        }
        if (!insn->reg_width) insn->reg_width = insn->width;
    }
    uint8_t modrm = code[i++];
    int mod = modrm >> 6, reg = (modrm >> 3) & 7, rm = modrm & 7;
    if (mod == 3) return 0;  // a register operand: not a memory access
    if (insn->has_immediate && reg != 0) return 0;
    if (rm == 4) {
        uint8_t sib = code[i++];
        if (mod == 0 && (sib & 7) == 5) i += 4;
    } else if (mod == 0 && rm == 5) {
        i += 4;  // RIP-relative
    }
    if (mod == 1) i += 1;
    if (mod == 2) i += 4;
    if (insn->has_immediate) {
        uint64_t value = 0;
        for (int k = 0; k < immediate_size; k++) value |= (uint64_t)code[i + k] << (8 * k);
        // imm32 with REX.W is sign-extended to 64 bits.
        if (immediate_size == 4 && insn->width == 8 && (value & 0x80000000u)) value |= 0xffffffff00000000ull;
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

static vfiokit_mmio_access_fn access_fn;
static struct sigaction next_handler[2];  // SIGSEGV, SIGBUS
static pthread_mutex_t install_lock = PTHREAD_MUTEX_INITIALIZER;
static int installed;

static int slot_of(int sig) { return sig == SIGBUS ? 1 : 0; }

// A fault the trap does not own goes to the program's handler; with none, the default action
// runs when the faulting instruction executes again (a core dump at the right place).
static void chain(int sig, siginfo_t *info, void *context, int synthesized) {
    struct sigaction next = next_handler[slot_of(sig)];
    if (next.sa_flags & SA_SIGINFO) {
        if (next.sa_sigaction) {
            next.sa_sigaction(sig, info, context);
            return;
        }
    } else if (next.sa_handler != SIG_DFL && next.sa_handler != SIG_IGN) {
        next.sa_handler(sig);
        return;
    }
    signal(sig, SIG_DFL);
    // A sent signal, or one the trap synthesised, would not come back by itself.
    if (synthesized || info->si_code <= 0) raise(sig);
}

static void on_fault(int sig, siginfo_t *info, void *context) {
#if defined(__x86_64__)
    struct window w;
    uintptr_t address = (uintptr_t)info->si_addr;
    ucontext_t *uc = context;
    vfiokit_mmio_access_fn fn = __atomic_load_n(&access_fn, __ATOMIC_ACQUIRE);
    if (sig == SIGSEGV && info->si_code > 0 && fn && find(address, &w)) {
        struct instruction insn;
        const uint8_t *rip = (const uint8_t *)uc->uc_mcontext.gregs[REG_RIP];
        int kind = decode(rip, &insn);
        if (kind != ACCESS_NONE && (kind == ACCESS_LOAD || w.writable)) {
            uint64_t value = kind == ACCESS_STORE ? (insn.has_immediate ? insn.immediate & mask_of(insn.width) : register_value(uc, &insn)) : 0;
            int deliver = fn(w.cookie, w.offset + (address - w.start), insn.width, kind == ACCESS_STORE, &value);
            if (deliver == 0) {
                if (kind == ACCESS_LOAD) set_register(uc, &insn, value);
                uc->uc_mcontext.gregs[REG_RIP] += insn.length;
                return;
            }
            // vfio_pci_mmap_huge_fault: VM_FAULT_SIGBUS, BUS_ADRERR at the address.
            info->si_signo = deliver;
            info->si_code = BUS_ADRERR;
            chain(deliver, info, context, 1);
            return;
        }
    }
#endif
    chain(sig, info, context, 0);
}

int vfiokit_trap_install(vfiokit_mmio_access_fn fn) {
#if !defined(__x86_64__)
    (void)fn;
    errno = ENOSYS;  // the decoder speaks x86-64 only
    return -1;
#else
    pthread_mutex_lock(&install_lock);
    __atomic_store_n(&access_fn, fn, __ATOMIC_RELEASE);
    int result = 0;
    if (!installed) {
        struct sigaction action;
        memset(&action, 0, sizeof(action));
        action.sa_sigaction = on_fault;
        // Not SA_ONSTACK: emulation runs the device model, deeper than an alternate signal stack.
        action.sa_flags = SA_SIGINFO;
        sigemptyset(&action.sa_mask);
        if (sigaction(SIGSEGV, &action, &next_handler[0]) != 0 || sigaction(SIGBUS, &action, &next_handler[1]) != 0) result = -1;
        else __atomic_store_n(&installed, 1, __ATOMIC_RELEASE);
    }
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
