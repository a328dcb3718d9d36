#include "CRCU.h"

#include <errno.h>
#include <linux/membarrier.h>
#include <sys/syscall.h>
#include <unistd.h>

__thread void *vfiokit_rcu_reader __attribute__((tls_model("initial-exec")));
unsigned long long vfiokit_rcu_grace_periods;

int vfiokit_rcu_membarrier_register(void) {
    long commands = syscall(SYS_membarrier, MEMBARRIER_CMD_QUERY, 0, 0);
    if (commands < 0) return -errno;
    if (!(commands & MEMBARRIER_CMD_PRIVATE_EXPEDITED)) return -ENOSYS;
    if (syscall(SYS_membarrier, MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED, 0, 0) != 0) return -errno;
    return 0;
}

int vfiokit_rcu_membarrier(void) {
    if (syscall(SYS_membarrier, MEMBARRIER_CMD_PRIVATE_EXPEDITED, 0, 0) != 0) return -errno;
    return 0;
}
