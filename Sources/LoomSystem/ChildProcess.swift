import CLoomSystem

#if canImport(Glibc)
    import Glibc
#endif

/// A child process started by `posix_spawn`: standard input and output on /dev/null, standard
/// error shared with this process, no other descriptor inherited, in a process group of its own
/// (a terminal's Ctrl-C reaches this process, which decides what its children do), with no
/// signal blocked.
public final class ChildProcess {
    /// How a child ended.
    public enum Termination: Equatable, Sendable, CustomStringConvertible {
        /// It exited with this status.
        case exited(Int32)
        /// This signal ended it.
        case signalled(Int32)

        public var description: String {
            switch self {
            case .exited(let status): "exit status \(status)"
            case .signalled(let signal): "signal \(signal)"
            }
        }
    }

    /// A child could not be started.
    public struct SpawnError: Error, CustomStringConvertible {
        /// The program that was to run.
        public let executable: String
        /// What failed and its error number.
        public let operation: String
        public let code: Int32
        public var description: String {
            "cannot start \(executable) (\(operation): \(String(cString: strerror(code)))); check that it exists and is executable, and that the process limit is not reached"
        }
    }

    /// The child's process id.
    public let pid: pid_t
    /// How it ended, once it has ended and been reaped (by ``isRunning`` or ``waitUntilExit()``).
    public private(set) var termination: Termination? = nil

    /// Starts `executable` (a path, not searched for in PATH) with `arguments` (not counting argv[0]) and this process's environment.
    public init(executable: String, arguments: [String]) throws(SpawnError) {
        func check(_ code: Int32, _ operation: String) throws(SpawnError) {
            if code != 0 { throw SpawnError(executable: executable, operation: operation, code: code) }
        }
        var actions = posix_spawn_file_actions_t()
        try check(posix_spawn_file_actions_init(&actions), "posix_spawn_file_actions_init")
        defer { posix_spawn_file_actions_destroy(&actions) }
        try check(posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0), "open /dev/null")
        try check(posix_spawn_file_actions_addopen(&actions, 1, "/dev/null", O_WRONLY, 0), "open /dev/null")
        try check(loom_spawn_close_from(&actions, 3), "close inherited descriptors")
        var attributes = posix_spawnattr_t()
        try check(posix_spawnattr_init(&attributes), "posix_spawnattr_init")
        defer { posix_spawnattr_destroy(&attributes) }
        var none = sigset_t()
        sigemptyset(&none)
        try check(posix_spawnattr_setsigmask(&attributes, &none), "set the signal mask")
        try check(posix_spawnattr_setpgroup(&attributes, 0), "set the process group")
        try check(posix_spawnattr_setflags(&attributes, Int16(POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETPGROUP)), "set spawn flags")
        let argv = ([executable] + arguments).map { strdup($0) } + [nil]
        defer { for p in argv { free(p) } }
        var pid = pid_t()
        try check(posix_spawn(&pid, executable, &actions, &attributes, argv, environ), "posix_spawn")
        self.pid = pid
    }

    /// Whether the child still runs; reaps it (and records ``termination``) once it has ended.
    public var isRunning: Bool {
        reap(blocking: false)
        return termination == nil
    }

    /// Waits for the child to end and reaps it.
    @discardableResult
    public func waitUntilExit() -> Termination {
        while termination == nil { reap(blocking: true) }
        return termination!
    }

    /// Sends `signal` to the child, unless it has already been reaped (its pid may then be another process's).
    public func send(_ signal: Int32) {
        if termination == nil { kill(pid, signal) }
    }

    private func reap(blocking: Bool) {
        guard termination == nil else { return }
        var status: Int32 = 0
        let r = waitpid(pid, &status, blocking ? 0 : WNOHANG)
        if r == pid {
            let signal = status & 0x7f
            termination = signal == 0 ? .exited((status >> 8) & 0xff) : .signalled(signal)
        } else if r < 0 && errno == ECHILD {
            // Reaped elsewhere (a SIGCHLD handler set to ignore): it has ended, how is unknown.
            termination = .exited(-1)
        }
    }
}
