import LoomSystem
import Synchronization
import Testing

#if canImport(Glibc)
    import Glibc
#endif

@Suite("child processes (real posix_spawn)")
struct ChildProcessTests {
    @Test("an exit status and a killing signal are told apart")
    func termination() throws {
        let exits = try ChildProcess(executable: "/bin/sh", arguments: ["-c", "exit 3"])
        #expect(exits.waitUntilExit() == .exited(3))
        #expect(!exits.isRunning)
        let sleeper = try ChildProcess(executable: "/bin/sleep", arguments: ["30"])
        #expect(sleeper.isRunning)
        sleeper.send(SIGKILL)
        #expect(sleeper.waitUntilExit() == .signalled(SIGKILL))
        #expect(sleeper.termination?.description == "signal 9")
    }

    @Test("a program that is not there fails in one line that names it")
    func missingProgram() {
        #expect {
            _ = try ChildProcess(executable: "/nonexistent/loom-worker", arguments: [])
        } throws: { error in
            let text = "\(error)"
            return text.contains("/nonexistent/loom-worker") && !text.contains("\n")
        }
    }

    @Test("the child inherits no descriptor beyond 0, 1 and 2, and its standard input is empty")
    func descriptors() throws {
        // A descriptor without close-on-exec, which a plain fork and exec would pass on.
        let fd = open("/dev/null", O_RDONLY)
        #expect(fd > 2)
        defer { close(fd) }
        let probe = try ChildProcess(executable: "/bin/sh", arguments: ["-c", "test -e /proc/self/fd/\(fd) && exit 1; read line && exit 2; exit 0"])
        #expect(probe.waitUntilExit() == .exited(0))
    }

    @Test("the child runs in its own process group, with no signal blocked even if the parent blocks some")
    func groupAndSignals() throws {
        var blocked = sigset_t(), previous = sigset_t()
        sigemptyset(&blocked)
        sigaddset(&blocked, SIGTERM)
        pthread_sigmask(SIG_BLOCK, &blocked, &previous)
        defer { pthread_sigmask(SIG_SETMASK, &previous, nil) }
        let child = try ChildProcess(executable: "/bin/sleep", arguments: ["30"])
        defer { if child.isRunning { child.send(SIGKILL); child.waitUntilExit() } }
        // posix_spawn returns once the child exists; its group is set before it runs the program.
        #expect(getpgid(child.pid) == child.pid)
        child.send(SIGTERM)
        #expect(child.waitUntilExit() == .signalled(SIGTERM))
    }
}

@Suite("threads and condition locks")
struct OSThreadTests {
    @Test("a started thread runs its body under its name, and a broadcast wakes its waiter")
    func namedThread() throws {
        let lock = ConditionLock()
        let name = Mutex<String?>(nil)
        try OSThread.start(name: "loom-test") {
            var buffer = [UInt8](repeating: 0, count: 32)
            let fd = open("/proc/thread-self/comm", O_RDONLY)
            let n = fd >= 0 ? read(fd, &buffer, buffer.count) : 0
            if fd >= 0 { close(fd) }
            lock.withLock {
                name.withLock { $0 = String(decoding: buffer.prefix(max(n, 0)), as: UTF8.self).trimmingWhitespace }
                lock.broadcast()
            }
        }
        lock.withLock {
            while name.withLock({ $0 }) == nil { lock.wait(seconds: 10) }
        }
        #expect(name.withLock { $0 } == "loom-test")
    }

    @Test("a timed wait with nothing to wake it returns false after about its time")
    func timedWait() {
        let lock = ConditionLock()
        let start = ContinuousClock.now
        var woken = true
        lock.withLock {
            // Spurious wake-ups are allowed: wait again until the time is up.
            while woken && start.duration(to: .now) < .milliseconds(50) { woken = lock.wait(seconds: 0.05) }
        }
        #expect(!woken)
        let waited = start.duration(to: .now)
        #expect(waited >= .milliseconds(50) && waited < .seconds(5))
        // Odd times are bounded, not trapped on: past ones return at once.
        lock.withLock {
            #expect(!lock.wait(seconds: -1))
            #expect(!lock.wait(seconds: .nan))
        }
    }
}

@Suite("text helpers that stand in for Foundation's")
struct TextTests {
    @Test("C formats: numbers, long results, no truncation")
    func cFormat() {
        #expect(String(cFormat: "%.1f", 2.25) == "2.2")
        #expect(String(cFormat: "%.0f %d", 1234.6, 7) == "1235 7")
        #expect(String(cFormat: "%g", 0.5) == "0.5")
        #expect(String(cFormat: "% .6g", -1.0 / 3) == "-0.333333")
        let long = String(cFormat: "%0200d", 42)
        #expect(long.count == 200 && long.hasSuffix("42"))
    }

    @Test("paths and white space")
    func paths() {
        #expect(PathText.lastComponent("a/b/c.npy") == "c.npy")
        #expect(PathText.lastComponent("a/b/") == "b")
        #expect(PathText.lastComponent("c.npy") == "c.npy")
        #expect(PathText.lastComponent("/") == "/")
        #expect(PathText.parent("a/b/c.npy") == "a/b")
        #expect(PathText.parent("/a") == "/")
        #expect(PathText.parent("c.npy") == "")
        #expect(" \t12345\n".trimmingWhitespace == "12345")
        #expect("  \n".trimmingWhitespace == "")
    }
}
