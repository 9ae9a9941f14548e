import Foundation

/// A real Slurm cluster of two nodes on this machine, for a test: Debian's munged, slurmctld and
/// two slurmd daemons (nodes n1 at 127.0.0.1 and n2 at 127.0.0.2, two CPUs each), started as
/// children with their configuration, state and logs in a temporary folder, and stopped by their
/// process ids in ``tearDown()``. Needs root and the packages slurmctld, slurmd, slurm-client and
/// munge (scripts/test installs them); ``isAvailable`` says whether they are there.
public final class SlurmCluster {
    public let directory: TemporaryDirectory
    /// Daemon process ids. Started with posix_spawn, not Foundation's Process: these daemons close
    /// every inherited descriptor at start, including the socket Foundation watches a child by,
    /// and Foundation then blocks its monitor thread in waitpid for them, so that no other child's
    /// exit (sinfo's, loom's) is ever seen.
    private var daemons: [pid_t] = []
    private var torn = false
    public var conf: String { directory.file("slurm.conf") }

    public static var isAvailable: Bool {
        getuid() == 0
            && ["/usr/sbin/slurmctld", "/usr/sbin/slurmd", "/usr/sbin/munged", "/usr/bin/sbatch"]
                .allSatisfy { FileManager.default.isExecutableFile(atPath: $0) }
    }

    /// - Parameter backfillEverySecond: run the backfill scheduler every second (`bf_interval=1`), as
    ///   heterogeneous jobs need to start without a 30-s wait. (Not for requeue tests: with it, a job
    ///   requeued from its own batch script failed on its second start, in 2 of 2 tries.)
    public init(backfillEverySecond: Bool = false) throws {
        directory = TemporaryDirectory("loom-slurm")
        let d = directory.path
        let base = 20_000 + Int(getpid() % 9_000) * 3
        for sub in ["state", "spool/n1", "spool/n2", "log"] {
            try FileManager.default.createDirectory(atPath: d + "/" + sub, withIntermediateDirectories: true)
        }
        var key = [UInt8](repeating: 0, count: 1024)
        for i in key.indices { key[i] = UInt8.random(in: 0...255) }
        try writeFile(d + "/munge.key", key)
        chmod(d + "/munge.key", 0o400)
        let config = """
            ClusterName=loomtest
            SlurmctldHost=localhost(127.0.0.1)
            SlurmctldPort=\(base)
            AuthType=auth/munge
            AuthInfo=socket=\(d)/munge.socket
            CredType=cred/munge
            SlurmUser=root
            StateSaveLocation=\(d)/state
            SlurmdSpoolDir=\(d)/spool/%n
            SlurmctldPidFile=\(d)/slurmctld.pid
            SlurmdPidFile=\(d)/slurmd-%n.pid
            SlurmctldLogFile=\(d)/log/slurmctld.log
            SlurmdLogFile=\(d)/log/slurmd-%n.log
            ProctrackType=proctrack/linuxproc
            TaskPlugin=task/none
            SelectType=select/cons_tres
            SelectTypeParameters=CR_Core
            MpiDefault=none
            ReturnToService=2
            SchedulerType=sched/backfill
            \(backfillEverySecond ? "SchedulerParameters=bf_interval=1" : "")
            JobCompType=jobcomp/none
            AccountingStorageType=accounting_storage/none
            JobAcctGatherType=jobacct_gather/none
            SlurmctldTimeout=30
            SlurmdTimeout=30
            InactiveLimit=0
            KillWait=5
            MinJobAge=600
            NodeName=n1 NodeAddr=127.0.0.1 Port=\(base + 1) CPUs=2 State=UNKNOWN
            NodeName=n2 NodeAddr=127.0.0.2 Port=\(base + 2) CPUs=2 State=UNKNOWN
            PartitionName=debug Nodes=n1,n2 Default=YES MaxTime=INFINITE State=UP

            """
        try writeFile(conf, Array(config.utf8))
        do {
            try start(
                "/usr/sbin/munged",
                [
                    "-F", "--force", "--key-file=\(d)/munge.key", "--socket=\(d)/munge.socket",
                    "--pid-file=\(d)/munged.pid", "--log-file=\(d)/log/munged.log", "--seed-file=\(d)/munge.seed"
                ], log: "munged.out")
            try waitFor(timeout: 10) { FileManager.default.fileExists(atPath: d + "/munge.socket") }
            try start("/usr/sbin/slurmctld", ["-D", "-f", conf], log: "slurmctld.out")
            try start("/usr/sbin/slurmd", ["-D", "-N", "n1", "-f", conf], log: "slurmd-n1.out")
            try start("/usr/sbin/slurmd", ["-D", "-N", "n2", "-f", conf], log: "slurmd-n2.out")
            try waitFor(timeout: 30) {
                (try? self.run("/usr/bin/sinfo", ["-h", "-N", "-o", "%T"]).stdout)?.split(separator: "\n").filter { $0 == "idle" }.count == 2
            }
        } catch {
            tearDown()
            throw error
        }
    }

    deinit { tearDown() }

    private func start(_ executable: String, _ arguments: [String], log: String) throws {
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        posix_spawn_file_actions_addopen(&actions, 1, directory.file("log/" + log), O_WRONLY | O_CREAT | O_TRUNC, 0o644)
        posix_spawn_file_actions_adddup2(&actions, 1, 2)
        var env = ProcessInfo.processInfo.environment
        env["SLURM_CONF"] = conf
        let argv = ([executable] + arguments).map { strdup($0) } + [nil]
        let envp = env.map { strdup("\($0.key)=\($0.value)") } + [nil]
        defer { for p in argv + envp { free(p) } }
        var pid: pid_t = 0
        let rc = posix_spawn(&pid, executable, &actions, nil, argv, envp)
        guard rc == 0 else { throw SlurmError(what: "cannot start \(executable): \(String(cString: strerror(rc)))") }
        daemons.append(pid)
    }

    private func waitFor(timeout: TimeInterval, _ condition: () -> Bool) throws {
        let deadline = Date().addingTimeInterval(timeout)
        while !condition() {
            guard Date() < deadline else { throw SlurmError(what: "the cluster did not come up; logs in \(directory.path)/log") }
            usleep(100_000)
        }
    }

    /// Runs a Slurm client command against this cluster.
    @discardableResult
    public func run(_ executable: String, _ arguments: [String], cwd: String? = nil, environment: [String: String] = [:]) throws -> ProcessResult {
        try runProcess(executable, arguments, cwd: cwd, environment: environment.merging(["SLURM_CONF": conf]) { $1 }, timeout: 60)
    }

    /// Submits a batch script; returns the job id.
    public func sbatch(_ arguments: [String], cwd: String, environment: [String: String] = [:]) throws -> String {
        let r = try run("/usr/bin/sbatch", ["--parsable"] + arguments, cwd: cwd, environment: environment)
        guard r.status == 0, let id = r.stdout.split(separator: ";").first.map({ $0.trimmingCharacters(in: .whitespacesAndNewlines) }), !id.isEmpty else {
            throw SlurmError(what: "sbatch failed: \(r.stderr)")
        }
        return id
    }

    /// The job's fields (`scontrol show job -o`), e.g. JobState, ExitCode, Restarts.
    public func job(_ id: String) throws -> [String: String] {
        let r = try run("/usr/bin/scontrol", ["show", "job", "-o", id])
        var fields: [String: String] = [:]
        for word in r.stdout.split(whereSeparator: \.isWhitespace) {
            guard let eq = word.firstIndex(of: "=") else { continue }
            fields[String(word[..<eq])] = String(word[word.index(after: eq)...])
        }
        return fields
    }

    /// Waits until the job is in one of `states`; returns its fields.
    public func wait(
        _ id: String, for states: Set<String> = ["COMPLETED", "FAILED", "CANCELLED", "TIMEOUT", "NODE_FAIL", "OUT_OF_MEMORY"],
        timeout: TimeInterval = 120
    ) throws -> [String: String] {
        let deadline = Date().addingTimeInterval(timeout)
        while Date() < deadline {
            let f = try job(id)
            if let s = f["JobState"], states.contains(s) { return f }
            usleep(200_000)
        }
        throw SlurmError(what: "job \(id) did not reach \(states.sorted()) within \(Int(timeout)) s: \(try job(id))")
    }

    /// Stops every daemon by its process id and removes the folder.
    ///
    /// SIGTERM first, then SIGKILL for those still running after one shared second: slurmd and
    /// munged here take 5 s or more to honour SIGTERM (slurmd retries a slurmctld that is already
    /// gone), which cost every test 15 s. Nothing of the test's cluster is worth a clean shutdown.
    public func tearDown() {
        guard !torn else { return }
        torn = true
        for pid in daemons.reversed() { kill(pid, SIGTERM) }
        let deadline = Date().addingTimeInterval(1)
        for pid in daemons.reversed() {
            var status: Int32 = 0
            while waitpid(pid, &status, WNOHANG) == 0 {
                if Date() > deadline { kill(pid, SIGKILL); waitpid(pid, &status, 0); break }
                usleep(20_000)
            }
        }
        directory.remove()
    }

    public struct SlurmError: Error, CustomStringConvertible {
        public let what: String
        public var description: String { what }
    }
}
