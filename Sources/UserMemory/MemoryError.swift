import KernelRules

/// The simulated process's memory (allocation, `get_user_pages` pinning), as a source of errors.
public enum UserMemoryLayer: ErrorLayer {}

/// A failure to allocate or pin user memory: `EFAULT` for an address the process never mapped,
/// `ENOMEM` over `RLIMIT_MEMLOCK`, … with the rule that decides it (`T1-20`, `T1-91`).
public typealias MemoryError = SimulationError<UserMemoryLayer>
