import CZeroMQ
import Dispatch
import LoomSystem
import Synchronization

/// A libzmq context: owns the I/O threads. Thread-safe; share one per process.
public final class Context: @unchecked Sendable {
    let handle: UnsafeMutableRawPointer
    private let terminated = Atomic<Bool>(false)

    /// Creates a context, loading libzmq first if this is the process's first.
    ///
    /// Throws ``ZMQLibraryError`` when libzmq cannot be loaded.
    public init() throws {
        try ZMQLibraryError.load()
        guard let h = zmq_ctx_new() else { throw ZMQError("zmq_ctx_new") }
        handle = h
    }

    /// Terminates the context once its sockets are closed, waiting at most `seconds`.
    ///
    /// Termination is what delivers the messages of sockets closed with a linger
    /// (``Socket/close(lingeringFor:)``): a process that exits without it may drop its last
    /// words, such as a coordinator's `end` to its workers. Call it before the process exits;
    /// if a socket is still open somewhere it gives up after `seconds` rather than hang.
    public func terminate(waitingAtMost seconds: Double) {
        guard !terminated.exchange(true, ordering: .sequentiallyConsistent) else { return }
        let done = DispatchSemaphore(value: 0)
        let h = UInt(bitPattern: handle)
        // Without a thread to wait on, the process exits without the wait (and may drop last words).
        guard
            (try? OSThread.start(
                name: "loom-zmq-term",
                {
                    let p = UnsafeMutableRawPointer(bitPattern: h)!
                    while zmq_ctx_term(p) != 0 && zmq_errno() == EINTR {}
                    done.signal()
                })) != nil
        else { return }
        _ = done.wait(timeout: .now() + seconds)
    }

    /// Terminates the context, if ``terminate(waitingAtMost:)`` has not; every socket must be closed first.
    deinit {
        guard !terminated.load(ordering: .sequentiallyConsistent) else { return }
        while zmq_ctx_term(handle) != 0 && zmq_errno() == EINTR {}
    }

    /// The libzmq version, e.g. "4.3.4".
    public static var version: String {
        var major: Int32 = 0, minor: Int32 = 0, patch: Int32 = 0
        zmq_version(&major, &minor, &patch)
        return "\(major).\(minor).\(patch)"
    }
}
