import Foundation
import LoomTensor
import LoomTestSupport
import Testing

/// `--verify FRACTION` with real processes: shards computed twice and compared, a worker that
/// computes wrong caught, quarantined, and its shards computed again.
@Suite("verification by recomputation (real processes)", .serialized)
struct VerificationTests {
    /// 500 shards: 5 sequences × 200 alphas × 5 betas, 10 examples per shard, on the fd100 model.
    struct SmallJob {
        let s: Scratch
        let flags: [String]

        init() throws {
            s = try Scratch()
            try writeNpy(s.dir.file("some.npy"), shape: [200, 1], (0..<200).map { Float($0) / 10 })
            flags = [
                "--mode", "product", "--model", "model.onnx", "--x", "x.npy", "--arg", "some.npy", "--arg", "a1.npy",
                "--batch-size", "10", "--shard-batches", "1", "--quiet"
            ]
        }

        func reference() throws -> [UInt8] {
            let r = try runLoom(["run"] + flags + ["--out", s.dir.file("reference")], cwd: s.dir.path, timeout: 120)
            #expect(r.status == 0, "\(r.stderr)")
            return try FileIO.readAll(s.dir.file("reference/y.npy"))
        }

        func verification() throws -> [String: Any] {
            try #require(try readJSON(s.out + "/manifest.json")["verification"] as? [String: Any])
        }
    }

    @Test("a worker that flips a bit of one shard: a third worker decides, it is quarantined, its shards are computed again; the same bits")
    func liarQuarantined() throws {
        let job = try SmallJob(); defer { job.s.remove() }
        let reference = try job.reference()
        let port = freePort()
        let fast = ["--heartbeat", "0.2", "--liveness", "5", "--log-level", "info"]
        let logs = ["coordinator", "liar", "w1", "w2"].map { job.s.dir.file("\($0).log") }
        let coordinator = try startProcess(
            Repository.loomBinary,
            ["coordinator", "--insecure", "--bind", "tcp://127.0.0.1:\(port)", "--verify", "1"] + job.flags + fast + ["--out", job.s.out],
            cwd: job.s.dir.path, stderrPath: logs[0])
        defer { if coordinator.isRunning { coordinator.terminate() } }
        // The liar starts alone, so the first shards, shard 0 among them, are written from its results.
        let liar = try startProcess(
            Repository.loomBinary, ["worker", "--insecure", "--connect", "tcp://127.0.0.1:\(port)"] + fast,
            environment: ["LOOM_TEST_FLIP_BIT_SHARD": "0", "LOOM_TEST_SHARD_DELAY_US": "2000"], stderrPath: logs[1])
        defer { if liar.isRunning { liar.terminate() } }
        let deadline = Date().addingTimeInterval(30)
        while Date() < deadline, ((try? FileManager.default.attributesOfItem(atPath: job.s.out + "/journal.loom")[.size] as? Int) ?? 0) < 72 + 40 * 20 {
            usleep(20_000)
        }
        let honest = try (1...2).map { k in
            try startProcess(
                Repository.loomBinary, ["worker", "--insecure", "--connect", "tcp://127.0.0.1:\(port)"] + fast,
                environment: ["LOOM_TEST_SHARD_DELAY_US": "500"], stderrPath: logs[1 + k])
        }
        defer { for w in honest where w.isRunning { w.terminate() } }
        let finished = waitOrKill(coordinator, timeout: 120)
        let text = logs.map { "== \(($0 as NSString).lastPathComponent)\n" + ((try? String(contentsOfFile: $0, encoding: .utf8)) ?? "") }
            .joined(separator: "\n")
        #expect(finished && coordinator.terminationStatus == 0, "logs:\n\(text.suffix(20_000))")
        #expect(try FileIO.readAll(job.s.out + "/y.npy") == reference, "the result differs from the in-process one")
        let v = try job.verification()
        #expect((v["mismatches"] as? Int ?? 0) >= 1, "\(v)")
        let quarantined = v["quarantined"] as? [String] ?? []
        #expect(quarantined.count == 1 && quarantined[0].contains("-\(liar.processIdentifier)-"), "\(v)")
        #expect((v["verified"] as? Int ?? 0) > 0 && (v["unverified"] as? Int) == 0, "\(v)")
        #expect(text.contains("quarantined"), "the coordinator's log names the quarantine")
        #expect(waitOrKill(liar, timeout: 15), "the quarantined worker was told to stop")
        for w in honest { #expect(waitOrKill(w, timeout: 15)) }
        // `loom verify` finds the published result sound: the revoked journal records are not counted.
        let check = try runLoom(["verify", job.s.out])
        #expect(check.status == 0, "\(check.stdout)\(check.stderr)")
    }

    @Test("--verify 1 on two honest workers: every shard is confirmed by the other worker, none mismatches; the same bits")
    func everyShardVerified() throws {
        let job = try SmallJob(); defer { job.s.remove() }
        let reference = try job.reference()
        let r = try runLoom(["run"] + job.flags + ["--out", job.s.out, "--workers", "2", "--verify", "1"], cwd: job.s.dir.path, timeout: 120)
        #expect(r.status == 0, "\(r.stderr)")
        #expect(try FileIO.readAll(job.s.out + "/y.npy") == reference)
        let v = try job.verification()
        #expect(v["verified"] as? Int == 500 && v["mismatches"] as? Int == 0 && v["unverified"] as? Int == 0, "\(v)")
        #expect((v["quarantined"] as? [String])?.isEmpty == true)
    }

    @Test("--verify with one worker: nothing can be verified, the job completes, and the manifest says so")
    func oneWorker() throws {
        let job = try SmallJob(); defer { job.s.remove() }
        let r = try runLoom(["run"] + job.flags + ["--out", job.s.out, "--workers", "1", "--verify", "0.1"], cwd: job.s.dir.path, timeout: 120)
        #expect(r.status == 0, "\(r.stderr)")
        let v = try job.verification()
        #expect(v["verified"] as? Int == 0 && (v["unverified"] as? Int ?? 0) > 0, "\(v)")
        #expect((v["note"] as? String)?.contains("two or more workers") == true, "\(v)")
    }

    @Test("--verify out of range, or in one process: one line")
    func refused() throws {
        let job = try SmallJob(); defer { job.s.remove() }
        for (extra, words) in [
            (["--workers", "2", "--verify", "1.5"], "--verify must be a fraction from 0 to 1"),
            (["--verify", "0.5"], "--verify needs --workers 2 or more")
        ] {
            let r = try runLoom(["run"] + job.flags + ["--out", job.s.out] + extra, cwd: job.s.dir.path)
            expectRefusal(r, [words], out: job.s.out)
        }
    }
}
