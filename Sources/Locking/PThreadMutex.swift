import Glibc

/// A value behind a `pthread_mutex_t`: the project's lock for every piece of shared state.
///
/// Not `Synchronization.Mutex`, on purpose: on Linux that one hands contended lock and unlock to
/// the kernel (`FUTEX_LOCK_PI`), where ThreadSanitizer cannot see the ordering it provides, so a
/// `--sanitize=thread` run reports every contended critical section as a data race. A pthread
/// mutex is intercepted by the sanitizer and costs the same uncontended (one atomic
/// compare-exchange each way), so the stress suite runs under TSan with zero reports that are
/// not real races.
///
/// The value lives in its own allocation rather than a stored property: the mutex already makes
/// every access exclusive, and a class's stored `var` would add Swift's dynamic exclusivity check
/// (a thread-local access set, entered and left) to every critical section — on the system-call
/// path that was a tenth of the boundary's cost.
public final class PThreadMutex<Value>: @unchecked Sendable {
    private let mutex: UnsafeMutablePointer<pthread_mutex_t>
    private let value: UnsafeMutablePointer<Value>

    public init(_ value: Value) {
        self.value = .allocate(capacity: 1)
        self.value.initialize(to: value)
        mutex = .allocate(capacity: 1)
        mutex.initialize(to: pthread_mutex_t())
        pthread_mutex_init(mutex, nil)
    }

    deinit {
        pthread_mutex_destroy(mutex)
        mutex.deinitialize(count: 1)
        mutex.deallocate()
        value.deinitialize(count: 1)
        value.deallocate()
    }

    /// Runs `body` with exclusive access to the value (not reentrant: `body` must not take this lock).
    @inline(__always)
    public func withLock<Result, Failure: Error>(_ body: (inout Value) throws(Failure) -> Result) throws(Failure) -> Result {
        pthread_mutex_lock(mutex)
        defer { pthread_mutex_unlock(mutex) }
        return try body(&value.pointee)
    }
}
