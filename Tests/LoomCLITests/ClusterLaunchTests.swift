import Foundation
import LoomTensor
import LoomTestSupport
import Testing

/// What cluster launchers rely on: a port chosen at bind time and published in a file, workers
/// that find the coordinator through it, and workers that do not wait for ever.
@Suite("cluster launch: port 0, endpoint files, --max-wait (real processes)", .serialized)
struct ClusterLaunchTests {
    let caseDirectory = Repository.conformanceDirectory + "/fd100_product_marginalize"
    let jobFlags = [
        "--mode", "product", "--func", "marginalize", "--model", "model.onnx", "--x", "x.npy",
        "--arg", "a0.npy", "--arg", "a1.npy", "--motif", "ACGTGC"
    ]

    @Test("--bind tcp://*:0 --endpoint-file: a worker started first waits for the file, connects to the port chosen, and the bits match")
    func portZeroAndEndpointFile() throws {
        let s = TemporaryDirectory(); defer { s.remove() }
        let r0 = try runLoom(["run"] + jobFlags + ["--out", s.file("reference"), "--quiet"], cwd: caseDirectory)
        #expect(r0.status == 0, "\(r0.stderr)")
        let file = s.file("coordinator.endpoint")
        // The worker first: it waits for the file to appear.
        let worker = try startProcess(
            Repository.loomBinary, ["worker", "--insecure", "--endpoint-file", file, "--max-wait", "60"], stderrPath: s.file("worker.log"))
        usleep(300_000)
        #expect(worker.isRunning, "waiting for the endpoint file")
        let coordinator = try startProcess(
            Repository.loomBinary,
            [
                "coordinator", "--insecure", "--bind", "tcp://*:0", "--endpoint-file", file, "--advertise", "127.0.0.1",
                "--out", s.file("out"), "--quiet"
            ] + jobFlags,
            cwd: caseDirectory, stderrPath: s.file("coordinator.log"))
        #expect(waitOrKill(coordinator, timeout: 60))
        #expect(coordinator.terminationStatus == 0, "\((try? String(contentsOfFile: s.file("coordinator.log"), encoding: .utf8)) ?? "")")
        #expect(waitOrKill(worker, timeout: 10))
        #expect(worker.terminationStatus == 0)
        let written = try String(contentsOfFile: file, encoding: .utf8).trimmingCharacters(in: .whitespacesAndNewlines)
        #expect(written.hasPrefix("tcp://127.0.0.1:") && !written.hasSuffix(":0"), "the port libzmq chose, not 0: \(written)")
        #expect(try resultBytes(s.file("out")) == resultBytes(s.file("reference")))
        #expect(!FileManager.default.fileExists(atPath: file + ".tmp-\(coordinator.processIdentifier)"), "written through a temporary file, renamed")
    }

    @Test("--max-wait: a worker with no coordinator, or no endpoint file, exits 1 with one line naming what it waited for")
    func maxWait() throws {
        let port = freePort()
        let started = Date()
        let r = try runLoom(["worker", "--insecure", "--connect", "tcp://127.0.0.1:\(port)", "--max-wait", "1"], timeout: 30)
        #expect(r.status == 1)
        #expect(r.stderr.contains("no coordinator at tcp://127.0.0.1:\(port) within --max-wait 1 s"), "\(r.stderr)")
        // One line, besides the warning that --insecure gives at start.
        #expect(r.stderr.split(separator: "\n").filter { !$0.contains("--insecure") }.count == 1, "\(r.stderr)")
        #expect(Date().timeIntervalSince(started) < 10)
        let f = try runLoom(["worker", "--endpoint-file", "/nonexistent/loom.endpoint", "--max-wait", "0.5"], timeout: 30)
        #expect(f.status == 1)
        #expect(f.stderr.contains("--endpoint-file /nonexistent/loom.endpoint did not appear within --max-wait 0.5 s"), "\(f.stderr)")
        let both = try runLoom(["worker", "--endpoint-file", "x", "--connect", "tcp://127.0.0.1:1"], timeout: 30)
        #expect(both.status != 0 && both.stderr.contains("not both"), "\(both.stderr)")
        let zero = try runLoom(["worker", "--insecure", "--connect", "tcp://127.0.0.1:1", "--max-wait", "0"], timeout: 30)
        #expect(zero.status != 0 && zero.stderr.contains("--max-wait"), "\(zero.stderr)")
    }

    @Test("a host that does not resolve is one line and exit 1, not an endless wait (worker --connect, coordinator --collector)")
    func unresolvable() throws {
        let w = try runLoom(["worker", "--insecure", "--connect", "tcp://no-such-host.invalid:5555"], timeout: 30)
        #expect(w.status == 1)
        #expect(w.stderr.contains("no-such-host.invalid does not resolve"), "\(w.stderr)")
        let c = try runLoom(
            ["coordinator", "--insecure", "--bind", "tcp://127.0.0.1:0", "--collector", "tcp://no-such-host.invalid:5556"] + jobFlags,
            cwd: caseDirectory, timeout: 30)
        #expect(c.status == 1)
        #expect(c.stderr.contains("--collector tcp://no-such-host.invalid:5556: the host no-such-host.invalid does not resolve"), "\(c.stderr)")
    }
}

@Suite("interruption: SIGTERM ends a job cleanly, exit 75, resumable (real processes)", .serialized)
struct InterruptionTests {
    @Test("a stand-alone collector sent SIGTERM, even one started with it blocked, stops in one line, exit 75")
    func collectorSigterm() throws {
        let s = TemporaryDirectory(); defer { s.remove() }
        // The test runner's threads may block SIGTERM, and a child inherits that mask: the collector must unblock it.
        let collector = try startProcess(
            Repository.loomBinary, ["collector", "--bind", "ipc://\(s.file("k"))", "--out", s.file("out"), "--log-level", "info"],
            stderrPath: s.file("k.log"))
        let log = { (try? String(contentsOfFile: s.file("k.log"), encoding: .utf8)) ?? "" }
        let deadline = Date().addingTimeInterval(20)
        while Date() < deadline && !log().contains("listening") { usleep(20_000) }
        kill(collector.processIdentifier, SIGTERM)
        #expect(waitOrKill(collector, timeout: 10), "it stops")
        #expect(collector.terminationReason == .exit && collector.terminationStatus == 75, "\(log())")
        #expect(log().contains("interrupted by SIGTERM") && log().contains("run the same command to resume"), "\(log())")
    }

    @Test("a coordinator sent SIGTERM mid-job tells its workers (they exit 0), exits 75 in one line; the same command resumes to the same bits")
    func sigtermResumes() throws {
        let s = TemporaryDirectory(); defer { s.remove() }
        let dir = Repository.conformanceDirectory + "/fd100_product_marginalize"
        let flags = [
            "--mode", "product", "--func", "marginalize", "--model", "model.onnx", "--x", "x.npy", "--arg", "a0.npy", "--arg", "a1.npy",
            "--motif", "ACGTGC", "--batch-size", "1", "--shard-batches", "1", "--quiet"
        ]
        let reference = try runLoom(["run"] + flags + ["--out", s.file("reference")], cwd: dir)
        #expect(reference.status == 0)
        let endpoint = "ipc://\(s.file("c"))"
        let coordinatorArgs = ["coordinator", "--bind", endpoint, "--out", s.file("out")] + flags
        let c = try startProcess(Repository.loomBinary, coordinatorArgs, cwd: dir, stderrPath: s.file("c.log"))
        let slow = ["LOOM_TEST_SHARD_DELAY_US": "5000"]
        let workers = try (0..<2).map { k in
            try startProcess(Repository.loomBinary, ["worker", "--connect", endpoint], environment: slow, stderrPath: s.file("w\(k).log"))
        }
        // Under way: some shards journaled.
        let deadline = Date().addingTimeInterval(30)
        while Date() < deadline, ((try? FileManager.default.attributesOfItem(atPath: s.file("out/journal.loom"))[.size] as? Int) ?? 0) < 256 {
            usleep(20_000)
        }
        kill(c.processIdentifier, SIGTERM)
        #expect(waitOrKill(c, timeout: 20))
        #expect(c.terminationStatus == 75)
        let log = (try? String(contentsOfFile: s.file("c.log"), encoding: .utf8)) ?? ""
        #expect(log.contains("interrupted by SIGTERM") && log.contains("run the same command to resume"), "\(log)")
        #expect(log.split(separator: "\n").filter { $0.hasPrefix("loom:") }.count == 1, "\(log)")
        for w in workers { #expect(waitOrKill(w, timeout: 10)); #expect(w.terminationStatus == 0, "workers were told the job is over") }
        #expect(!FileManager.default.fileExists(atPath: s.file("out/manifest.json")))
        // The same command again, with a worker: it resumes from the journal.
        let again = try startProcess(Repository.loomBinary, coordinatorArgs, cwd: dir, stderrPath: s.file("c2.log"))
        let w = try startProcess(Repository.loomBinary, ["worker", "--connect", endpoint])
        #expect(waitOrKill(again, timeout: 60))
        #expect(again.terminationStatus == 0)
        waitOrKill(w, timeout: 10)
        let m = try readJSON(s.file("out/manifest.json"))
        #expect(((m["reliability"] as? [String: Any])?["resumed_shards"] as? Int ?? 0) > 0)
        #expect(try resultBytes(s.file("out")) == resultBytes(s.file("reference")))
    }
}
