#define _GNU_SOURCE
#include "CUserCopy.h"

#include <errno.h>
#include <pthread.h>
#include <sys/uio.h>
#include <unistd.h>

// The process's pid, looked up once rather than per copy (getpid is a system call) and again in
// the child after fork.
static pid_t self;

static void remember_self(void) { __atomic_store_n(&self, getpid(), __ATOMIC_RELAXED); }

__attribute__((constructor)) static void set_up(void) {
    remember_self();
    pthread_atfork(NULL, NULL, remember_self);
}

long vfiokit_copy_from_self(void *to, unsigned long from, unsigned long length) {
    struct iovec local = {to, length};
    struct iovec remote = {(void *)from, length};
    ssize_t copied = process_vm_readv(__atomic_load_n(&self, __ATOMIC_RELAXED), &local, 1, &remote, 1, 0);
    return copied < 0 ? -errno : copied;
}

long vfiokit_copy_to_self(unsigned long to, const void *from, unsigned long length) {
    struct iovec local = {(void *)from, length};
    struct iovec remote = {(void *)to, length};
    ssize_t copied = process_vm_writev(__atomic_load_n(&self, __ATOMIC_RELAXED), &local, 1, &remote, 1, 0);
    return copied < 0 ? -errno : copied;
}
