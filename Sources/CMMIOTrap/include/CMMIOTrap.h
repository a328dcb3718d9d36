#ifndef VFIOKIT_CMMIOTRAP_H
#define VFIOKIT_CMMIOTRAP_H

// The simulated kernel's SIGSEGV/SIGBUS handling in the process it runs in:
// - register BARs mapped into the process: every load and store to them is trapped (the range is
//   PROT_NONE), decoded and emulated as one access of its exact width against the device — what a
//   real CPU's uncached access to a PCI BAR is, one bus transaction per instruction;
// - copy_from_user/copy_to_user and page pinning: accesses to user memory that come back with
//   -EFAULT instead of a signal when the memory is unmapped or protected.

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/// Emulates one access: `cookie` names the mapping (its device region), `offset` is the byte
/// offset inside the region, `width` 1/2/4/8. A read stores its value in `*value`; a write takes
/// it from there. Returns 0, or a signal number (SIGBUS) to deliver to the program instead — as
/// vfio-pci's fault handler answers an access while memory decode is off.
typedef int (*vfiokit_mmio_access_fn)(uint64_t cookie, uint64_t offset, int width, int is_write, uint64_t *value);

/// Installs the SIGSEGV/SIGBUS handler once (later calls only replace `access`); the handlers
/// that were installed before become the next in the chain. 0, or -1 with errno set.
int vfiokit_trap_install(vfiokit_mmio_access_fn access);

/// Registers `[start, start + length)` (already mapped PROT_NONE) as a trapped window of the
/// region `cookie`, whose first byte is region offset `offset`; `writable` is whether the
/// program mapped it with PROT_WRITE (a store to a read-only mapping is the program's SIGSEGV).
/// 0, or -1 with errno ENOSPC when the table is full.
int vfiokit_trap_add(uintptr_t start, size_t length, uint64_t cookie, uint64_t offset, int writable);

/// Forgets every window byte inside `[start, start + length)` (an munmap or a mapping placed over
/// it); a window cut in two keeps both outer parts. Returns the number of windows touched.
int vfiokit_trap_remove(uintptr_t start, size_t length);

/// A zapped device-RAM mapping was touched: `cookie` names it. Returns 0 once the mapping is
/// accessible again (the faulting instruction re-executes), or a signal number (SIGBUS) for the
/// program — vfio-pci's fault handler with memory decode off.
typedef int (*vfiokit_refault_fn)(uint64_t cookie);
/// Installs the handler (as `vfiokit_trap_install`) with `refault` for zapped mappings.
int vfiokit_zap_install(vfiokit_refault_fn refault);
/// Registers `[start, start + length)` — a device-RAM mapping just made PROT_NONE — as zapped
/// (`vfio_pci_zap_bars`), so its next access goes to `refault`. 0, or -1 with errno set.
/// `vfiokit_trap_remove` forgets it like a register window.
int vfiokit_zap_add(uintptr_t start, size_t length, uint64_t cookie);
/// Whether any window still names `cookie`.
int vfiokit_trap_cookie_in_use(uint64_t cookie);

/// Records the program's own handler for SIGSEGV or SIGBUS (what it passed to `sigaction`),
/// so faults outside every window reach it; the trap's handler stays installed in front.
/// `old` (may be NULL) receives the handler the program had registered before.
int vfiokit_trap_set_next(int signal, const void *action, void *old);

/// Whether the handler is installed (a program's own `sigaction` for SIGSEGV/SIGBUS then goes
/// to `vfiokit_trap_set_next`).
int vfiokit_trap_is_installed(void);

/// `copy_from_user`/`copy_to_user`: copies `length` bytes, or returns -EFAULT (with no signal
/// reaching the program) when either side faults; the bytes before the fault may be copied.
int vfiokit_user_copy(void *to, const void *from, size_t length);

/// A device's DMA copy into or out of the program's own memory (a whole-process pin): copies
/// `length` bytes, or returns -EFAULT with the faulting address in `*fault_address` when the
/// program no longer has the page mapped accessibly (it mapped something else over DMA-mapped
/// memory with MAP_FIXED) — a failed transfer for the device, never a signal. Under a sanitizer
/// (which owns the fault signals) a plain copy.
int vfiokit_dma_copy(void *to, const void *from, size_t length, uintptr_t *fault_address);

/// `strnlen_user`: the length of the string at `address` (the bytes before its NUL), `limit`
/// when none of the first `limit` bytes is NUL, or -EFAULT when a byte before the NUL faults (its
/// offset in `*faulted`). Reads one byte at a time and none past the NUL.
long vfiokit_user_strnlen(uintptr_t address, size_t limit, size_t *faulted);

/// Faults in every page of `[start, start + length)` as `get_user_pages` does — reading a byte of
/// each, or with `write` an atomic add of zero (breaking copy-on-write, as FOLL_WRITE does) — or
/// returns -EFAULT when a page is unmapped, PROT_NONE, or read-only for `write`.
int vfiokit_user_touch(uintptr_t start, size_t length, int write);

/// "tsan" or "asan" when this code was built with that sanitizer, else NULL: a program the
/// preload library is injected into then needs that sanitizer's runtime loaded first.
const char *vfiokit_sanitizer(void);

/// Instruction decoding for the tests: the access `code` (at most 15 bytes) makes — 1 for a load,
/// 2 for a store, 0 for an instruction the trap cannot emulate — with its width and length.
int vfiokit_trap_decode(const uint8_t *code, int *width, int *length);

#ifdef __cplusplus
}
#endif

#endif
