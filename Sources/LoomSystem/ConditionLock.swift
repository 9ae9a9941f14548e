#if canImport(Glibc)
    import Glibc
#endif

/// A mutex and a condition variable, for a thread that waits for another's state to change
/// (a compute thread's start, a collector's end).
///
/// Lock it, test the state, ``wait()`` while it is not the one wanted, unlock; whoever changes
/// the state does so holding the lock, then ``broadcast()``s.
public final class ConditionLock: @unchecked Sendable {
    private let mutex = UnsafeMutablePointer<pthread_mutex_t>.allocate(capacity: 1)
    private let condition = UnsafeMutablePointer<pthread_cond_t>.allocate(capacity: 1)

    public init() {
        pthread_mutex_init(mutex, nil)
        // Timed waits measure the monotonic clock: a wall clock set back does not stretch them.
        var attributes = pthread_condattr_t()
        pthread_condattr_init(&attributes)
        pthread_condattr_setclock(&attributes, CLOCK_MONOTONIC)
        pthread_cond_init(condition, &attributes)
        pthread_condattr_destroy(&attributes)
    }

    deinit {
        pthread_cond_destroy(condition)
        pthread_mutex_destroy(mutex)
        condition.deallocate()
        mutex.deallocate()
    }

    public func lock() { pthread_mutex_lock(mutex) }
    public func unlock() { pthread_mutex_unlock(mutex) }

    /// Waits for a ``broadcast()``, the lock held on entry and on return. It may return spuriously: test the state again.
    public func wait() { pthread_cond_wait(condition, mutex) }

    /// Waits for a ``broadcast()`` or until `seconds` have passed (at most a billion: longer is
    /// for ever in practice); false once they have. The lock is held on entry and on return. It
    /// may return spuriously: test the state again.
    @discardableResult
    public func wait(seconds: Double) -> Bool {
        var now = timespec()
        clock_gettime(CLOCK_MONOTONIC, &now)
        let bounded = seconds.isNaN ? 0 : min(max(seconds, 0), 1e9)
        let whole = bounded.rounded(.down)
        var deadline = timespec(tv_sec: now.tv_sec + Int(whole), tv_nsec: now.tv_nsec + Int((bounded - whole) * 1e9))
        if deadline.tv_nsec >= 1_000_000_000 {
            deadline.tv_sec += 1
            deadline.tv_nsec -= 1_000_000_000
        }
        return pthread_cond_timedwait(condition, mutex, &deadline) != ETIMEDOUT
    }

    /// Wakes every waiting thread.
    public func broadcast() { pthread_cond_broadcast(condition) }

    /// Runs `body` holding the lock.
    public func withLock<T>(_ body: () throws -> T) rethrows -> T {
        lock()
        defer { unlock() }
        return try body()
    }
}
