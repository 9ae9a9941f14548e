import Foundation
import LoomTensor
import LoomTestSupport
import Testing

/// deploy/slurm on a real Slurm (two nodes on this machine), each result compared byte for byte
/// with `loom run` of the same job.
@Suite(
    "deploy/slurm on a real Slurm cluster", .serialized,
    .enabled(if: SlurmCluster.isAvailable, "needs root and Debian's slurmctld, slurmd, slurm-client and munge"))
struct SlurmTests {
    static let script = Repository.root + "/deploy/slurm/loom.sbatch"
    let caseDirectory = Repository.conformanceDirectory + "/fd100_product_marginalize"
    let jobFlags = [
        "--mode", "product", "--func", "marginalize", "--model", "model.onnx", "--x", "x.npy", "--arg", "a0.npy",
        "--arg", "a1.npy", "--motif", "ACGTGC", "--batch-size", "1", "--shard-batches", "1"
    ]

    /// What every job here is given: the binary, and loopback addresses (the test's traffic stays on this machine).
    /// (Endpoint files go to the test's own folder, not the fixtures' folder the jobs run in.)
    func environment(_ s: TemporaryDirectory, _ extra: [String: String] = [:]) -> [String: String] {
        ["LOOM": Repository.loomBinary, "LOOM_ADVERTISE": "127.0.0.1", "LOOM_MAX_WAIT": "60", "LOOM_ENDPOINT_DIR": s.path].merging(extra) { $1 }
    }

    func reference(_ s: TemporaryDirectory) throws -> [String: [UInt8]] {
        let r = try runLoom(["run"] + jobFlags + ["--out", s.file("reference"), "--quiet"], cwd: caseDirectory)
        #expect(r.status == 0, "\(r.stderr)")
        return try resultBytes(s.file("reference"))
    }

    func output(_ s: TemporaryDirectory, _ id: String) -> String { (try? String(contentsOfFile: s.file("slurm-\(id).out"), encoding: .utf8)) ?? "" }

    /// Waits until the collector has journaled some shards of `out`.
    func waitUnderWay(_ out: String) {
        let deadline = Date().addingTimeInterval(60)
        while Date() < deadline, ((try? FileManager.default.attributesOfItem(atPath: out + "/journal.loom")[.size] as? Int) ?? 0) < 256 { usleep(50_000) }
    }

    @Test("one allocation: the coordinator on the first node, workers over the rest; the same bits as loom run")
    func oneAllocation() throws {
        let cluster = try SlurmCluster(); defer { cluster.tearDown() }
        let s = TemporaryDirectory(); defer { s.remove() }
        let expected = try reference(s)
        let id = try cluster.sbatch(
            ["--ntasks=3", "--output=\(s.file("slurm-%j.out"))", Self.script] + jobFlags + ["--out", s.file("out")],
            cwd: caseDirectory, environment: environment(s))
        let job = try cluster.wait(id)
        #expect(job["JobState"] == "COMPLETED", "\(job) \(output(s, id))")
        #expect(job["ExitCode"] == "0:0")
        #expect(try resultBytes(s.file("out")) == expected)
        #expect(processes(containing: s.file("out")).isEmpty, "no loom process is left")
    }

    @Test("a heterogeneous job: the coordinator in one component, the workers in another; the same bits")
    func heterogeneous() throws {
        let cluster = try SlurmCluster(backfillEverySecond: true); defer { cluster.tearDown() }
        let s = TemporaryDirectory(); defer { s.remove() }
        let expected = try reference(s)
        let id = try cluster.sbatch(
            ["--output=\(s.file("slurm-%j.out"))", Repository.root + "/deploy/slurm/loom-het.sbatch"] + jobFlags
                + ["--out", s.file("out")], cwd: caseDirectory, environment: environment(s))
        let job = try cluster.wait(id)
        #expect(job["JobState"] == "COMPLETED", "\(job) \(output(s, id))")
        #expect(job["ExitCode"] == "0:0")
        #expect(try resultBytes(s.file("out")) == expected)
        #expect(processes(containing: s.file("out")).isEmpty, "no loom process is left")
    }

    @Test("a worker killed mid-job: the others finish it, with the same bits")
    func workerKilled() throws {
        let cluster = try SlurmCluster(); defer { cluster.tearDown() }
        let s = TemporaryDirectory(); defer { s.remove() }
        let expected = try reference(s)
        let id = try cluster.sbatch(
            ["--ntasks=4", "--output=\(s.file("slurm-%j.out"))", Self.script] + jobFlags + ["--out", s.file("out")],
            cwd: caseDirectory, environment: environment(s, ["LOOM_TEST_SHARD_DELAY_US": "5000"]))
        waitUnderWay(s.file("out"))
        // The worker processes themselves (not the srun that started them).
        let workers = processes(containing: ".loom-\(id).endpoint").filter { pid in
            guard let data = FileManager.default.contents(atPath: "/proc/\(pid)/cmdline") else { return false }
            let args = data.split(separator: 0).map { String(decoding: $0, as: UTF8.self) }
            return args.count > 1 && args[0].hasSuffix("/loom") && args[1] == "worker"
        }
        #expect(!workers.isEmpty)
        if let victim = workers.first { kill(victim, SIGKILL) }
        let job = try cluster.wait(id)
        #expect(job["JobState"] == "COMPLETED", "\(job) \(output(s, id))")
        #expect(try resultBytes(s.file("out")) == expected)
    }

    @Test("SIGTERM before walltime: the coordinator exits 75, the script requeues, the job resumes to the same bits")
    func requeue() throws {
        let cluster = try SlurmCluster(); defer { cluster.tearDown() }
        let s = TemporaryDirectory(); defer { s.remove() }
        let expected = try reference(s)
        let id = try cluster.sbatch(
            ["--ntasks=3", "--output=\(s.file("slurm-%j.out"))", Self.script] + jobFlags + ["--out", s.file("out")],
            cwd: caseDirectory, environment: environment(s, ["LOOM_TEST_SHARD_DELAY_US": "20000"]))
        waitUnderWay(s.file("out"))
        // What --signal=B:TERM@120 does before walltime: SIGTERM to the batch script.
        try cluster.run("/usr/bin/scancel", ["--batch", "--signal=TERM", id])
        _ = try cluster.wait(id, for: ["PENDING", "REQUEUED", "REQUEUE_HOLD"], timeout: 60)
        // A requeued job waits (about two minutes) before it may start again: let it go now.
        try cluster.run("/usr/bin/scontrol", ["update", "JobId=\(id)", "StartTime=now"])
        let job = try cluster.wait(id, timeout: 180)
        #expect(job["JobState"] == "COMPLETED", "\(job) \(output(s, id))")
        #expect(Int(job["Restarts"] ?? "0") ?? 0 >= 1, "the job ran twice")
        #expect(output(s, id).contains("interrupted by SIGTERM"))
        let m = try readJSON(s.file("out/manifest.json"))
        #expect(((m["reliability"] as? [String: Any])?["resumed_shards"] as? Int ?? 0) > 0, "the second run resumed from the journal")
        #expect(try resultBytes(s.file("out")) == expected)
    }

    @Test("a job that fails (a missing model) fails in Slurm with the reason in its output, and leaves no process behind")
    func failure() throws {
        let cluster = try SlurmCluster(); defer { cluster.tearDown() }
        let s = TemporaryDirectory(); defer { s.remove() }
        var flags = jobFlags
        flags[flags.firstIndex(of: "model.onnx")!] = "missing.onnx"
        let id = try cluster.sbatch(
            ["--ntasks=3", "--output=\(s.file("slurm-%j.out"))", Self.script] + flags + ["--out", s.file("out")],
            cwd: caseDirectory, environment: environment(s))
        let job = try cluster.wait(id)
        #expect(job["JobState"] == "FAILED", "\(job)")
        #expect(job["ExitCode"] == "1:0", "\(job)")
        #expect(output(s, id).contains("missing.onnx"), "\(output(s, id))")
        usleep(500_000)
        #expect(processes(containing: ".loom-\(id).endpoint").isEmpty, "no loom process is left")
    }

    @Test("a coordinator job plus a worker array: the workers find it by its endpoint file, are cancelled when it ends; the same bits")
    func coordinatorAndArray() throws {
        let cluster = try SlurmCluster(); defer { cluster.tearDown() }
        let s = TemporaryDirectory(); defer { s.remove() }
        let expected = try reference(s)
        let dir = Repository.root + "/deploy/slurm"
        let c = try cluster.sbatch(
            ["--output=\(s.file("slurm-%j.out"))", dir + "/loom-coordinator.sbatch"] + jobFlags + ["--out", s.file("out")],
            cwd: caseDirectory, environment: environment(s))
        let array = try cluster.sbatch(
            [
                "--array=1-3", "--job-name=loom-workers-\(c)", "--output=\(s.file("slurm-%A_%a.out"))",
                dir + "/loom-workers.sbatch"
            ], cwd: caseDirectory, environment: environment(s, ["LOOM_COORDINATOR_JOB": c]))
        let job = try cluster.wait(c)
        #expect(job["JobState"] == "COMPLETED", "\(job) \(output(s, c))")
        #expect(try resultBytes(s.file("out")) == expected)
        // The array is over: its tasks left when told the job ended, or were cancelled.
        let deadline = Date().addingTimeInterval(30)
        while Date() < deadline, !((try? cluster.run("/usr/bin/squeue", ["-h", "-j", array]).stdout) ?? "x").isEmpty { usleep(200_000) }
        #expect(((try? cluster.run("/usr/bin/squeue", ["-h", "-j", array]).stdout) ?? "x").isEmpty, "no array task is left")
        #expect(processes(containing: ".loom-\(c).endpoint").isEmpty, "no loom process is left")
    }
}
