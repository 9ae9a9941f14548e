import CLoomSystem

#if canImport(Glibc)
    import Glibc
#endif

/// A thread of the operating system's own, for work that must not run on Swift's cooperative pool:
/// a loop that owns a ZeroMQ socket, a blocking `accept`, a compute loop.
///
/// Threads are detached: whoever needs to know when one ends waits on a ``ConditionLock`` or a
/// semaphore the body signals.
public enum OSThread {
    /// A thread could not be created (the process is out of threads or memory).
    public struct StartError: Error, CustomStringConvertible {
        /// The thread's name.
        public let name: String
        /// `pthread_create`'s error number.
        public let code: Int32
        public var description: String {
            "cannot start the \(name) thread: \(String(cString: strerror(code))); the process has too many threads or too little memory"
        }
    }

    /// Starts `body` on a new detached thread named `name` (shown by `ps -L` and debuggers; 15 bytes at most show).
    public static func start(name: String, _ body: @escaping @Sendable () -> Void) throws(StartError) {
        let box = Unmanaged.passRetained(Body(name: name, run: body)).toOpaque()
        var thread = pthread_t()
        let code = pthread_create(
            &thread, nil,
            { raw in
                let body = Unmanaged<Body>.fromOpaque(raw!).takeRetainedValue()
                loom_name_thread(body.name)
                body.run()
                return nil
            }, box)
        guard code == 0 else {
            Unmanaged<Body>.fromOpaque(box).release()
            throw StartError(name: name, code: code)
        }
        pthread_detach(thread)
    }

    private final class Body {
        let name: String
        let run: @Sendable () -> Void
        init(name: String, run: @escaping @Sendable () -> Void) {
            self.name = name
            self.run = run
        }
    }
}
