#ifndef VFIOKIT_CBENCHSUPPORT_H
#define VFIOKIT_CBENCHSUPPORT_H

// Baselines for `vfiokit bench` that only C can measure: loads as a driver's readl issues them,
// and the bare cost of a SIGSEGV round trip (the floor of any trap-per-access design).

#include <stdint.h>

/// CLOCK_MONOTONIC in nanoseconds.
double vfiokit_bench_now_ns(void);

/// The median of `count` samples (sorts them in place).
double vfiokit_bench_median(double *samples, int count);

/// Median nanoseconds per 4-byte volatile load of `address` over `rounds` rounds of `count` loads.
double vfiokit_bench_loads(const volatile void *address, int count, int rounds);

/// Median nanoseconds per fault of a load from a PROT_NONE page whose SIGSEGV handler does
/// nothing but skip the faulting instruction; the SIGSEGV handler in place before is restored.
double vfiokit_bench_bare_fault(int count, int rounds);

#endif
