import FoundationEssentials
import Logging
import LoomProduct
import LoomSystem
import LoomTensor
import Synchronization
import ZeroMQ

#if canImport(Glibc)
    import Glibc
#endif

/// Set by SIGINT or SIGTERM while a local cluster runs.
nonisolated(unsafe) private var interruptedBySignal: Int32 = 0

/// `loom run --workers N`: a coordinator and a collector in this process, and N worker
/// processes of this same binary, over ipc endpoints in a private temporary folder.
///
/// Every worker is stopped when the job ends, fails or is interrupted (SIGINT, SIGTERM);
/// workers also exit on their own if this process disappears.
public enum LocalCluster {
    /// The signal (SIGINT, SIGTERM) that interrupted the last run, 0 if none.
    public static var interruptedSignal: Int32 { interruptedBySignal }

    /// Removes run folders left by `loom run --workers N` processes that were killed: only this
    /// user's, only real folders (never through a symlink), and only those whose owner process
    /// is gone (or, from before owners were recorded, untouched for a day).
    static func sweepStaleRunFolders(in parent: String = "/tmp") {
        guard let names = try? FileManager.default.contentsOfDirectory(atPath: parent) else { return }
        for name in names where name.hasPrefix("loom-run-") {
            let path = parent + "/" + name
            var st = stat()
            guard lstat(path, &st) == 0, (st.st_mode & S_IFMT) == S_IFDIR, st.st_uid == getuid() else { continue }
            let fd = open(path + "/owner", O_RDONLY | O_NOFOLLOW | O_CLOEXEC)
            if fd >= 0 {
                var buffer = [UInt8](repeating: 0, count: 32)
                let n = read(fd, &buffer, buffer.count)
                close(fd)
                guard n > 0, let pid = Int32(String(decoding: buffer[..<n], as: UTF8.self).trimmingWhitespace),
                    pid > 0, kill(pid, 0) != 0, errno == ESRCH
                else { continue }
            } else {
                guard Double(time(nil)) - Double(st.st_mtim.tv_sec) > 86_400 else { continue }
            }
            try? FileManager.default.removeItem(atPath: path)
        }
    }

    /// Runs the job; returns the manifest the collector published.
    public static func run(
        job: Job, workers: Int, out: String, overwrite: Bool, progress: ProgressReporter.Style,
        logLevel: Logger.Level, logger: Logger, configure: (inout Coordinator.Options) -> Void = { _ in }
    ) throws -> Manifest {
        precondition(workers >= 1)
        sweepStaleRunFolders()
        var template = Array("/tmp/loom-run-XXXXXX".utf8CString)
        guard let dirPointer = template.withUnsafeMutableBufferPointer({ mkdtemp($0.baseAddress!) }) else {
            throw FileError(path: "/tmp", operation: "create a private folder for the run's endpoints", errno: errno)
        }
        let dir = String(cString: dirPointer)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        // Who owns the folder, for the sweep of a later run if this one is killed (SIGKILL skips the defer).
        // Best effort: a folder without its owner file is swept once it is a day old.
        _ = FileManager.default.createFile(atPath: dir + "/owner", contents: Data("\(getpid())\n".utf8))
        let context = try Context()
        defer { context.terminate(waitingAtMost: 2) }
        var options = Coordinator.Options(bind: "ipc://\(dir)/coordinator", out: out)
        options.collectorBind = "ipc://\(dir)/collector"
        options.overwrite = overwrite
        options.progress = progress
        configure(&options)
        let coordinator = Coordinator(job: job, options: options, context: context, logger: logger)
        var children: [ChildProcess] = []
        defer { stop(children) }
        var endpoint = ""
        func spawn() throws {
            let arguments = [
                "worker", "--connect", endpoint, "--parent-pid", "\(getpid())", "--log-level", logLevel.rawValue, "--log-format", Console.format.rawValue,
                "--heartbeat", "\(options.settings.heartbeat)", "--liveness", "\(options.settings.liveness)"
            ]
            children.append(try ChildProcess(executable: Self.executablePath, arguments: arguments))
        }
        coordinator.onBound = { bound in
            endpoint = bound
            for _ in 0..<workers { try spawn() }
        }
        // A worker process that dies is replaced; those that fail by themselves, a bounded number of times.
        var handled = Set<Int32>()
        var failures = 0
        let maxFailures = 2 * workers + 3 * options.settings.policy.maxFailures
        // A parent may have started us with these signals blocked (test runners do); we must see them.
        var unblock = sigset_t()
        sigemptyset(&unblock)
        sigaddset(&unblock, SIGINT)
        sigaddset(&unblock, SIGTERM)
        pthread_sigmask(SIG_UNBLOCK, &unblock, nil)
        let previous = (signal(SIGINT, onSignal), signal(SIGTERM, onSignal))
        defer { signal(SIGINT, previous.0); signal(SIGTERM, previous.1) }
        coordinator.tick = {
            if interruptedBySignal != 0 { return "interrupted by signal \(interruptedBySignal)" }
            // Replace every worker process that has exited. One killed from outside (SIGKILL: the OOM
            // killer, an operator, a fault test) is simply replaced; exits and crashes of its own are
            // counted, so that a worker that cannot run at all does not restart forever.
            for p in children where !p.isRunning && !handled.contains(p.pid) {
                handled.insert(p.pid)
                let killed = p.termination == .signalled(SIGKILL)
                if !killed { failures += 1 }
                if failures > maxFailures {
                    let statuses = children.compactMap(\.termination).suffix(5).map(\.description).joined(separator: ", ")
                    return "worker processes keep failing (\(failures) exits or crashes, the last: \(statuses)); see their messages above"
                }
                logger.warning("a worker process exited; starting a replacement", metadata: ["status": "\(p.termination.map(\.description) ?? "?")"])
                do { try spawn() } catch { return "cannot start a replacement worker: \(error)" }
            }
            return nil
        }
        let joined = try coordinator.run()
        logger.info("local cluster done", metadata: ["workers": "\(joined)"])
        return try Manifest.read(path: out + "/" + OutputDirectory.manifestFile)
    }

    /// This binary's path (workers are the same binary).
    static var executablePath: String {
        var path = [CChar](repeating: 0, count: 4096)
        let n = readlink("/proc/self/exe", &path, path.count - 1)
        return n > 0 ? String(cBuffer: path) : CommandLine.arguments[0]
    }

    /// Stops worker processes: SIGTERM, then SIGKILL for any still running after two seconds.
    static func stop(_ children: [ChildProcess]) {
        for p in children where p.isRunning { p.send(SIGTERM) }
        let deadline = ContinuousClock.now + .seconds(2)
        while children.contains(where: \.isRunning) && ContinuousClock.now < deadline { usleep(10_000) }
        for p in children where p.isRunning { p.send(SIGKILL) }
        for p in children { p.waitUntilExit() }
    }
}

private func onSignal(_ signal: Int32) {
    interruptedBySignal = signal
}
