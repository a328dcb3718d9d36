import Glibc

/// A value behind a `pthread_mutex_t`: the project's lock for every piece of shared state.
///
/// Not `Synchronization.Mutex`, on purpose: on Linux that one hands contended lock and unlock to
/// the kernel (`FUTEX_LOCK_PI`), where ThreadSanitizer cannot see the ordering it provides, so a
/// `--sanitize=thread` run reports every contended critical section as a data race. A pthread
/// mutex is intercepted by the sanitizer and costs the same uncontended (one atomic
/// compare-exchange each way), so the stress suite runs under TSan with zero reports that are
/// not real races.
public final class PThreadMutex<Value>: @unchecked Sendable {
    private let mutex: UnsafeMutablePointer<pthread_mutex_t>
    private var value: Value

    public init(_ value: Value) {
        self.value = value
        mutex = .allocate(capacity: 1)
        mutex.initialize(to: pthread_mutex_t())
        pthread_mutex_init(mutex, nil)
    }

    deinit {
        pthread_mutex_destroy(mutex)
        mutex.deinitialize(count: 1)
        mutex.deallocate()
    }

    /// Runs `body` with exclusive access to the value (not reentrant: `body` must not take this lock).
    @inline(__always)
    public func withLock<Result, Failure: Error>(_ body: (inout Value) throws(Failure) -> Result) throws(Failure) -> Result {
        pthread_mutex_lock(mutex)
        defer { pthread_mutex_unlock(mutex) }
        return try body(&value)
    }
}
