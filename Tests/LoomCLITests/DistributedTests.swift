import Foundation
import LoomTensor
import LoomTestSupport
import Testing

/// The bytes of every result file in an out folder, by file name.
func resultBytes(_ out: String) throws -> [String: [UInt8]] {
    var files: [String: [UInt8]] = [:]
    for leaf in try ConformanceCase.leaves(manifest: out + "/manifest.json") {
        files[leaf.file] = try FileIO.readAll(out + "/" + leaf.file)
    }
    return files
}

/// fd100_product_marginalize in 1,280 one-example shards: a job long enough for faults, joins and hostile messages.
func longCase() throws -> ConformanceCase {
    var c = try ConformanceCase(directory: Repository.conformanceDirectory + "/fd100_product_marginalize")
    c.argv[c.argv.firstIndex(of: "--batch-size")! + 1] = "1"
    c.argv += ["--shard-batches", "1"]
    return c
}

/// Runs a case into a fresh folder with `--workers n`; returns the folder (caller removes it).
func runCase(_ c: ConformanceCase, workers: Int) throws -> (TemporaryDirectory, ProcessResult) {
    let out = TemporaryDirectory()
    let r = try runLoom(["run"] + c.argv + ["--workers", "\(workers)", "--out", out.path, "--quiet"], cwd: c.directory, timeout: 120)
    return (out, r)
}

@Suite("distributed runs (real processes, real sockets)", .serialized)
struct DistributedTests {
    @Test("--workers 1 and --workers 3 give results bitwise identical to --workers 0", arguments: caseNames())
    func bitwise(name: String) throws {
        let c = try ConformanceCase(directory: Repository.conformanceDirectory + "/" + name)
        guard c.expectError == nil else { return }
        let (base, r0) = try runCase(c, workers: 0)
        defer { base.remove() }
        #expect(r0.status == 0, "\(r0.stderr)")
        let reference = try resultBytes(base.path)
        for n in [1, 3] {
            let (out, r) = try runCase(c, workers: n)
            defer { out.remove() }
            #expect(r.status == 0, "--workers \(n): \(r.stderr)")
            #expect(try resultBytes(out.path) == reference, "--workers \(n) differs from --workers 0")
            #expect(try c.compare(out: out.path).isEmpty)
            let m = try readJSON(out.path + "/manifest.json")
            #expect((1...n).contains(m["workers"] as? Int ?? 0), "workers that took part (a small job may end before all join)")
        }
        #expect(orphanedWorkers().isEmpty, "no worker process is left")
    }

    @Test(
        "shards of several batches (--shard-batches 3, the last one short) give the same bits in process and on 2 workers",
        arguments: [
            "fd100_product_batch_not_dividing", "fd100_pairwise_batch_not_dividing", "fd100_product_ablate",
            "loom_convpool_pairwise_deep_lift_shap", "tutorial_pairwise_predict_random"
        ])
    func multiBatchShards(name: String) throws {
        let plain = try ConformanceCase(directory: Repository.conformanceDirectory + "/" + name)
        let (base, r0) = try runCase(plain, workers: 0)
        defer { base.remove() }
        #expect(r0.status == 0, "\(r0.stderr)")
        #expect(try readJSON(base.path + "/manifest.json")["batches_per_shard"] as? Int == 1, "a small job keeps one batch per shard")
        let reference = try resultBytes(base.path)
        var c = plain
        c.argv += ["--shard-batches", "3"]
        for n in [0, 2] {
            let (out, r) = try runCase(c, workers: n)
            defer { out.remove() }
            #expect(r.status == 0, "--workers \(n): \(r.stderr)")
            #expect(try resultBytes(out.path) == reference, "--shard-batches 3 --workers \(n) differs from one batch per shard")
            let m = try readJSON(out.path + "/manifest.json")
            let batch = m["batch_size"] as! Int, examples = m["examples"] as! Int
            #expect(m["batches_per_shard"] as? Int == 3)
            #expect(m["shards"] as? Int == (examples + 3 * batch - 1) / (3 * batch))
        }
    }

    @Test("a model file and an arg larger than one 16 MiB frame travel in chunks, under the workers' frame cap: the same bits")
    func chunkedTransfers() throws {
        let s = TemporaryDirectory(); defer { s.remove() }
        // y = ΣX + ΣA + ΣW per example: W (5M floats, 20 MB) in an external data file, A one 5M-float row.
        let big = 5_000_000
        var b = ONNXBuilder(opset: 17)
        b.input("x", [nil, 4, 8])
        b.input("a", [nil, big])
        b.externalInitializer("w", shape: [big], location: "weights.bin", offset: 0, length: big * 4)
        b.initializer("xAxes", shape: [2], ints: [1, 2])
        b.initializer("aAxes", shape: [1], ints: [1])
        b.initializer("wAxes", shape: [1], ints: [0])
        b.initializer("one", shape: [1], ints: [1])
        b.node("ReduceSum", ["x", "xAxes"], ["rx"], [.int("keepdims", 0)])
        b.node("ReduceSum", ["a", "aAxes"], ["ra"], [.int("keepdims", 0)])
        b.node("ReduceSum", ["w", "wAxes"], ["rw"], [.int("keepdims", 0)])
        b.node("Add", ["rx", "ra"], ["s1"])
        b.node("Add", ["s1", "rw"], ["s2"])
        b.node("Unsqueeze", ["s2", "one"], ["y"])
        b.output("y")
        try b.write(to: s.file("model.onnx"))
        try writeNpy(s.file("w.npy"), shape: [big], (0..<big).map { Float($0 % 7) / 7 })
        // The weights as raw float32, after the .npy header (the same bytes).
        let npy = try FileIO.readAll(s.file("w.npy"))
        try writeFile(s.file("weights.bin"), Array(npy.suffix(big * 4)))
        try writeNpy(s.file("a.npy"), shape: [1, big], (0..<big).map { Float($0 % 5) / 5 })
        try writeNpy(s.file("x.npy"), shape: [6, 4, 8], (0..<(6 * 32)).map { Float(($0 / 4) % 4 == $0 % 4 ? 1 : 0) })
        let argv = ["run", "--mode", "product", "--model", "model.onnx", "--x", "x.npy", "--arg", "a.npy", "--batch-size", "2", "--quiet"]
        let r0 = try runLoom(argv + ["--out", s.file("one")], cwd: s.path, timeout: 120)
        #expect(r0.status == 0, "\(r0.stderr)")
        let r2 = try runLoom(argv + ["--out", s.file("two"), "--workers", "2"], cwd: s.path, timeout: 120)
        #expect(r2.status == 0, "\(r2.stderr)")
        #expect(try resultBytes(s.file("two")) == resultBytes(s.file("one")))
        let transfer = try #require(try readJSON(s.file("two") + "/manifest.json")["transfer"] as? [String: Any])
        #expect((transfer["to_workers_bytes"] as? Int ?? 0) >= 40_000_000, "the model and the arg went to the workers: \(transfer)")
    }

    @Test("cluster style: coordinator, two workers and a separate collector over tcp on 127.0.0.1")
    func cluster() throws {
        // One example per shard: 1,280 shards, long enough for both workers to join before the end.
        let c = try longCase()
        let (base, r0) = try runCase(c, workers: 0)
        defer { base.remove() }
        #expect(r0.status == 0)
        let out = TemporaryDirectory()
        defer { out.remove() }
        let cport = freePort(), kport = freePort()
        let collector = try startProcess(Repository.loomBinary, ["collector", "--insecure", "--bind", "tcp://127.0.0.1:\(kport)", "--out", out.path])
        // Workers first: they keep trying until the coordinator is there.
        let w1 = try startProcess(Repository.loomBinary, ["worker", "--insecure", "--connect", "tcp://127.0.0.1:\(cport)"])
        let w2 = try startProcess(Repository.loomBinary, ["worker", "--insecure", "--connect", "tcp://127.0.0.1:\(cport)"])
        let coordinator = try runLoom(
            ["coordinator", "--insecure", "--bind", "tcp://127.0.0.1:\(cport)", "--collector", "tcp://127.0.0.1:\(kport)", "--quiet"]
                + c.argv, cwd: c.directory, timeout: 60)
        #expect(coordinator.status == 0, "\(coordinator.stderr)")
        #expect(waitOrKill(collector, timeout: 10) && collector.terminationStatus == 0, "the collector exits 0 once published")
        #expect(waitOrKill(w1, timeout: 10) && w1.terminationStatus == 0, "a worker exits when the job is over")
        #expect(waitOrKill(w2, timeout: 10) && w2.terminationStatus == 0, "a worker exits when the job is over")
        #expect(try resultBytes(out.path) == resultBytes(base.path))
        #expect(try readJSON(out.path + "/manifest.json")["workers"] as? Int == 2)
    }

    /// A stand-alone worker that waits for a coordinator on a free port, logging to a file; then that coordinator's run.
    struct WaitingWorker {
        let c: ConformanceCase
        let out = TemporaryDirectory()
        let port = freePort()
        var log: String { out.file("worker.log") }
        let worker: Process

        /// Starts the worker with `heartbeat` seconds between heartbeats and a liveness of 3; it warns after `warnAfter` s without an answer.
        /// It retries its connection every 10 ms for `fastRetry` s, then after 10 ms doubling to 1 s.
        init(heartbeat: String, warnAfter: String = "10", fastRetry: String = "10") throws {
            c = try ConformanceCase(directory: Repository.conformanceDirectory + "/fd100_product_marginalize")
            worker = try startProcess(
                Repository.loomBinary,
                [
                    "worker", "--insecure", "--connect", "tcp://127.0.0.1:\(port)", "--heartbeat", heartbeat,
                    "--liveness", "3", "--log-level", "info"
                ],
                environment: ["LOOM_TEST_WAIT_WARNING_S": warnAfter, "LOOM_TEST_FAST_RETRY_S": fastRetry],
                stderrPath: out.file("worker.log"))
        }

        /// Runs the coordinator of the case's job; checks that it and the worker end well. Returns the worker's log.
        func runCoordinator(_ extra: [String] = [], environment: [String: String] = [:]) throws -> String {
            let coordinator = try runProcess(
                Repository.loomBinary,
                ["coordinator", "--insecure", "--bind", "tcp://127.0.0.1:\(port)", "--quiet"] + c.argv
                    + ["--out", out.path + "/r"] + extra, cwd: c.directory, environment: environment, timeout: 60)
            #expect(coordinator.status == 0, "\(coordinator.stderr)")
            #expect(waitOrKill(worker, timeout: 10) && worker.terminationStatus == 0)
            return try String(contentsOfFile: log, encoding: .utf8)
        }
    }

    @Test("a worker that waited for its coordinator gets the job once, however many hellos it queued meanwhile")
    func waitingWorkerGetsOneJob() throws {
        // Slow heartbeats (it would give up on a silent coordinator after 6 s). Its first hello waits
        // for the connection; while connected it says hello again every second until the job comes.
        let w = try WaitingWorker(heartbeat: "2")
        defer { w.out.remove() }
        let (base, r0) = try runCase(w.c, workers: 0)
        defer { base.remove() }
        #expect(r0.status == 0)
        usleep(3_300_000)
        let log = try w.runCoordinator()
        #expect(try resultBytes(w.out.path + "/r") == resultBytes(base.path))
        let jobs = log.split(separator: "\n").filter { $0.contains("loom worker: job (") }
        #expect(jobs.count == 1, "the worker was sent the job \(jobs.count) times")
    }

    @Test("a worker waits for a coordinator that is still loading its job, however long, and joins the moment it is ready")
    func workerWaitsForLoadingCoordinator() throws {
        // The worker gives up on a silent coordinator after 0.6 s; this one takes 2.5 s to load its job.
        let w = try WaitingWorker(heartbeat: "0.2", warnAfter: "1.5")
        defer { w.out.remove() }
        let started = Date()
        let log = try w.runCoordinator(["--heartbeat", "0.2", "--liveness", "3"], environment: ["LOOM_TEST_LOAD_DELAY_MS": "2500"])
        let took = Date().timeIntervalSince(started)
        #expect(!log.contains("lost the coordinator"), "the worker gave up on a coordinator that was loading:\n\(log)")
        #expect(log.contains("waiting for the coordinator to answer"))
        #expect(log.contains("no answer for 1 s: is that a Loom coordinator, still loading its job?"), "\(log)")
        // Joined at once: no back-off (1 s, then 2 s) after the load.
        #expect(took < 4.5, "the job took \(took) s")
    }

    @Test(
        "a worker started before its coordinator waits for it, without giving up, and joins at once, or within about a second once it has waited long",
        arguments: ["10", "0.5"])
    func workerStartedFirstJoinsPromptly(fastRetry: String) throws {
        // A silent coordinator would be given up after 0.3 s; this one starts 3 s after the worker, which
        // retries every 10 ms for `fastRetry` s, then after 10 ms doubling to 1 s.
        let w = try WaitingWorker(heartbeat: "0.1", warnAfter: "1", fastRetry: fastRetry)
        defer { w.out.remove() }
        usleep(3_000_000)
        let started = Date()
        let log = try w.runCoordinator(["--heartbeat", "0.1", "--liveness", "3"])
        let took = Date().timeIntervalSince(started)
        #expect(log.contains("waiting for a coordinator at tcp://127.0.0.1:\(w.port)"), "\(log)")
        #expect(!log.contains("lost the coordinator"), "the worker gave up on a coordinator that was not there yet:\n\(log)")
        // And it says so at warning level (the default), naming the endpoint: a wrong one is not a silent hang.
        #expect(log.contains("warning") && log.contains("no coordinator at tcp://127.0.0.1:\(w.port) for 1 s"), "\(log)")
        // The job starts at most about a second late (patient), or at once (the coordinator binds within a
        // few ms of starting: then only the job's own time, well under a second here).
        #expect(took < (fastRetry == "10" ? 2.5 : 4), "the job took \(took) s")
    }

    @Test("workers are job-agnostic and cache models by hash; --keep-alive serves the next job")
    func keepAlive() throws {
        let port = freePort()
        let cache = TemporaryDirectory()
        defer { cache.remove() }
        let worker = Process()
        worker.executableURL = URL(fileURLWithPath: Repository.loomBinary)
        worker.arguments = ["worker", "--insecure", "--connect", "tcp://127.0.0.1:\(port)", "--keep-alive"]
        worker.environment = ProcessInfo.processInfo.environment.merging(["LOOM_CACHE_DIR": cache.path]) { $1 }
        worker.standardOutput = FileHandle.nullDevice
        worker.standardError = FileHandle.nullDevice
        try worker.run()
        defer { waitOrKill(worker, timeout: 0) }
        for name in ["tutorial_pairwise_marginalize", "fd100_pairwise_alpha_beta"] {
            let c = try ConformanceCase(directory: Repository.conformanceDirectory + "/" + name)
            let out = TemporaryDirectory()
            defer { out.remove() }
            let r = try runLoom(
                ["coordinator", "--insecure", "--bind", "tcp://127.0.0.1:\(port)", "--out", out.path, "--quiet"] + c.argv,
                cwd: c.directory, timeout: 60)
            #expect(r.status == 0, "\(r.stderr)")
            #expect(try c.compare(out: out.path).isEmpty)
        }
        #expect(worker.isRunning, "a --keep-alive worker stays for the next job")
        #expect(try FileIO.listDirectory(cache.path).filter { $0.count == 64 }.count == 2, "both models are cached by sha256")
    }

    @Test("a shard that fails on a worker fails the job with the shard and the node named, and leaves no manifest")
    func workerError() throws {
        let s = try Scratch(); defer { s.remove() }
        try s.writeBadReshapeModel()
        let r = try runLoom(
            ["run", "--mode", "product", "--model", "bad.onnx", "--x", "x.npy", "--out", s.out, "--quiet", "--workers", "2"],
            cwd: s.dir.path, timeout: 60)
        #expect(r.status == 1)
        #expect(r.stderr.contains("bad_reshape") && r.stderr.contains("shard 0 (examples 0..<5)"), "\(r.stderr)")
        #expect(!FileManager.default.fileExists(atPath: s.out + "/manifest.json"))
        #expect(orphanedWorkers().isEmpty)
    }

    @Test("SIGTERM to loom run stops the job and every worker, without a manifest")
    func terminate() throws {
        let s = try Scratch(); defer { s.remove() }
        let p = try s.startLongRun()
        #expect(processes(containing: "--parent-pid \(p.processIdentifier) ").count == 2)
        usleep(300_000)
        kill(p.processIdentifier, SIGTERM)
        #expect(waitOrKill(p, timeout: 15), "loom run exits after SIGTERM")
        #expect(p.terminationStatus != 0)
        usleep(200_000)
        #expect(processes(containing: "--parent-pid \(p.processIdentifier) ").isEmpty, "no worker outlives the run")
        #expect(!FileManager.default.fileExists(atPath: s.out + "/manifest.json"))
    }

    @Test("workers exit by themselves when the run that started them is killed")
    func orphans() throws {
        let s = try Scratch(); defer { s.remove() }
        let p = try s.startLongRun()
        defer { removeRunFolders(ownedBy: p.processIdentifier) }
        #expect(processes(containing: "--parent-pid \(p.processIdentifier) ").count == 2)
        kill(p.processIdentifier, SIGKILL)
        p.waitUntilExit()
        let gone = Date().addingTimeInterval(5)
        while !processes(containing: "--parent-pid \(p.processIdentifier) ").isEmpty && Date() < gone { usleep(50_000) }
        #expect(processes(containing: "--parent-pid \(p.processIdentifier) ").isEmpty, "workers notice their parent is gone")
    }
}

@Suite("run folders of killed runs (real processes)", .serialized)
struct StaleRunFolderTests {
    @Test("a run removes run folders whose owner is gone; it keeps live owners' folders and never follows a symlink")
    func sweep() throws {
        let tag = "\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        let stale = "/tmp/loom-run-stale\(tag)", live = "/tmp/loom-run-live\(tag)", link = "/tmp/loom-run-link\(tag)"
        let target = TemporaryDirectory(); defer { target.remove() }
        defer { for p in [stale, live, link] { try? FileManager.default.removeItem(atPath: p) } }
        // A process that has exited: its pid is free.
        let gone = try startProcess("/bin/true", [])
        gone.waitUntilExit()
        for (dir, pid) in [(stale, gone.processIdentifier), (live, getpid())] {
            try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: false)
            try writeFile(dir + "/owner", Array("\(pid)\n".utf8))
        }
        try writeFile(target.file("owner"), Array("\(gone.processIdentifier)\n".utf8))
        try FileManager.default.createSymbolicLink(atPath: link, withDestinationPath: target.path)
        let c = try ConformanceCase(directory: Repository.conformanceDirectory + "/tutorial_pairwise_predict_single")
        let (out, r) = try runCase(c, workers: 1)
        defer { out.remove() }
        #expect(r.status == 0, "\(r.stderr)")
        #expect(!FileManager.default.fileExists(atPath: stale), "the dead owner's folder is removed")
        #expect(FileManager.default.fileExists(atPath: live + "/owner"), "a live owner's folder stays")
        #expect(FileManager.default.fileExists(atPath: target.file("owner")), "nothing is removed through a symlink")
    }
}
