#define _GNU_SOURCE
#include "CBenchSupport.h"

#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <ucontext.h>

// Timing loops and a signal handler that skips a load: never instrumented, so a sanitizer build
// measures the same instructions.
#if defined(__clang__)
#pragma clang attribute push(__attribute__((disable_sanitizer_instrumentation)), apply_to = function)
#endif

double vfiokit_bench_now_ns(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec * 1e9 + (double)t.tv_nsec;
}

static int compare(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

double vfiokit_bench_median(double *samples, int count) {
    qsort(samples, (size_t)count, sizeof(double), compare);
    return samples[count / 2];
}

// `movl (%rdi), %eax`: two bytes (8b 07), which the bare handler skips.
static inline uint32_t load32(const volatile void *address) {
    uint32_t value;
    __asm__ volatile("movl (%1), %0" : "=a"(value) : "D"(address) : "memory");
    return value;
}

double vfiokit_bench_loads(const volatile void *address, int count, int rounds) {
    double samples[64];
    if (rounds > 64) rounds = 64;
    for (int r = 0; r < rounds; r++) {
        double start = vfiokit_bench_now_ns();
        for (int i = 0; i < count; i++) (void)load32(address);
        samples[r] = (vfiokit_bench_now_ns() - start) / count;
    }
    return vfiokit_bench_median(samples, rounds);
}

static void skip_load(int sig, siginfo_t *info, void *context) {
    (void)sig;
    (void)info;
    ((ucontext_t *)context)->uc_mcontext.gregs[REG_RIP] += 2;
}

double vfiokit_bench_bare_fault(int count, int rounds) {
    void *page = mmap(NULL, 4096, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (page == MAP_FAILED) return -1;
    struct sigaction action, previous;
    memset(&action, 0, sizeof(action));
    action.sa_sigaction = skip_load;
    action.sa_flags = SA_SIGINFO;
    sigemptyset(&action.sa_mask);
    sigaction(SIGSEGV, &action, &previous);
    double result = vfiokit_bench_loads(page, count, rounds);
    sigaction(SIGSEGV, &previous, NULL);
    munmap(page, 4096);
    return result;
}

#if defined(__clang__)
#pragma clang attribute pop
#endif
