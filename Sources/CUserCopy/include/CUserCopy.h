// process_vm_readv(2) / process_vm_writev(2) on the calling process: how the UAPI facade reads and
// writes user memory the way the kernel's copy_from_user / copy_to_user do — through the kernel,
// so a range that is unmapped, PROT_NONE or (for a write) read-only fails with EFAULT instead of
// raising SIGSEGV. Access to one's own thread group is always permitted (ptrace_may_access).
// Swift's Glibc module does not declare these calls (they need _GNU_SOURCE).
#ifndef VFIOKIT_CUSERCOPY_H
#define VFIOKIT_CUSERCOPY_H

/// Copies `length` bytes from this process's address `from` to `to`: the bytes copied (fewer when
/// the range stops being readable part-way), or -errno (-EFAULT when none is readable).
long vfiokit_copy_from_self(void *to, unsigned long from, unsigned long length);

/// Copies `length` bytes from `from` to this process's address `to`: the bytes copied (fewer when
/// the range stops being writable part-way), or -errno (-EFAULT when none is writable).
long vfiokit_copy_to_self(unsigned long to, const void *from, unsigned long length);

#endif
