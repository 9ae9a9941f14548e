import Foundation
import LoomTensor
import LoomTestSupport
import Testing

/// A job run across the hosts of a ``NetworkLab``: the coordinator (and its collector) on one
/// host, the workers on another, and the result compared byte for byte with `loom run` in process.
struct CrossHostJob {
    let lab: NetworkLab
    let scratch = TemporaryDirectory("loom-hosts")
    let caseDirectory = Repository.conformanceDirectory + "/fd100_product_marginalize"
    /// 1,280 one-example shards.
    let jobFlags = [
        "--mode", "product", "--func", "marginalize", "--model", "model.onnx", "--x", "x.npy",
        "--arg", "a0.npy", "--arg", "a1.npy", "--motif", "ACGTGC", "--batch-size", "1", "--shard-batches", "1"
    ]
    /// Fast failure detection on both sides: a silence of 1.5 s is a lost peer.
    let timing = ["--heartbeat", "0.5", "--liveness", "3"]
    var out: String { scratch.file("out") }

    init(hosts: Int) throws {
        lab = try NetworkLab(hosts: hosts)
    }

    /// The result of the same job in one process.
    func reference() throws -> [String: [UInt8]] {
        let r = try runLoom(["run"] + jobFlags + ["--out", scratch.file("reference"), "--quiet"], cwd: caseDirectory)
        #expect(r.status == 0, "\(r.stderr)")
        return try resultBytes(scratch.file("reference"))
    }

    func log(_ name: String) -> String { scratch.file(name + ".log") }

    func coordinator(on host: NetworkLab.Host, port: Int, extra: [String] = []) throws -> Process {
        try lab.start(
            on: host, Repository.loomBinary,
            ["coordinator", "--insecure", "--bind", "tcp://*:\(port)"] + jobFlags + timing + ["--quiet", "--log-level", "info"] + extra,
            cwd: caseDirectory, stderrPath: log("coordinator"))
    }

    /// Workers slowed to ~5 ms a shard, so that the job lasts a few seconds.
    func workers(_ count: Int, on host: NetworkLab.Host, coordinator: String) throws -> [Process] {
        try (0..<count).map { k in
            try lab.start(
                on: host, Repository.loomBinary, ["worker", "--insecure", "--connect", coordinator] + timing + ["--log-level", "info"],
                environment: ["LOOM_TEST_SHARD_DELAY_US": "5000"], stderrPath: log("worker\(k)"))
        }
    }

    /// Waits until the collector has journaled some shards: the job is under way.
    func waitUntilUnderWay(timeout: TimeInterval = 60) -> Bool {
        let deadline = Date().addingTimeInterval(timeout)
        while Date() < deadline {
            if let size = try? FileManager.default.attributesOfItem(atPath: out + "/journal.loom")[.size] as? Int, size > 256 { return true }
            usleep(20_000)
        }
        return false
    }

    /// Waits for the coordinator to end; on a failure, attaches every role's log to the test.
    func finish(_ coordinator: Process, workers: [Process], timeout: TimeInterval = 120) throws -> Bool {
        let exited = waitOrKill(coordinator, timeout: timeout)
        for w in workers { waitOrKill(w, timeout: 10) }
        let ok = exited && coordinator.terminationStatus == 0
        if !ok { dumpLogs() }
        return ok
    }

    func dumpLogs() {
        for name in ["coordinator", "collector", "worker0", "worker1"] {
            if let text = try? String(contentsOfFile: log(name), encoding: .utf8) { print("--- \(name)\n\(text.suffix(4000))") }
        }
    }

    func logText(_ name: String) -> String { (try? String(contentsOfFile: log(name), encoding: .utf8)) ?? "" }

    func remove() {
        lab.tearDown()
        scratch.remove()
    }
}

@Suite(
    "across hosts (network namespaces, packets dropped by nftables)", .serialized,
    .enabled(if: NetworkLab.isAvailable, "needs root, ip (iproute2) and nft (nftables)"))
struct MultiHostTests {
    @Test("a coordinator bound to * on one host, workers on another: the in-process collector is reached and the bits match")
    func twoHosts() throws {
        let job = try CrossHostJob(hosts: 2); defer { job.remove() }
        let reference = try job.reference()
        let (a, b) = (job.lab.hosts[0], job.lab.hosts[1])
        let c = try job.coordinator(on: a, port: 5555, extra: ["--out", job.out])
        let ws = try job.workers(2, on: b, coordinator: "tcp://\(a.address):5555")
        #expect(try job.finish(c, workers: ws))
        #expect(try resultBytes(job.out) == reference)
        // The workers exit by themselves: they were told the job is over.
        #expect(ws.allSatisfy { !$0.isRunning && $0.terminationStatus == 0 })
    }

    @Test(
        "a partition between the hosts, both ways or one way, longer than the liveness: the job finishes with the same bits",
        arguments: [false, true])
    func partition(oneWay: Bool) throws {
        let job = try CrossHostJob(hosts: 2); defer { job.remove() }
        let reference = try job.reference()
        let (a, b) = (job.lab.hosts[0], job.lab.hosts[1])
        let c = try job.coordinator(on: a, port: 5555, extra: ["--out", job.out])
        let ws = try job.workers(2, on: b, coordinator: "tcp://\(a.address):5555")
        #expect(job.waitUntilUnderWay())
        try job.lab.partition(a, from: [b], oneWay: oneWay)
        #expect(!FileManager.default.fileExists(atPath: job.out + "/manifest.json"), "cut mid-job")
        sleep(4) // 4 s: longer than the 1.5-s liveness on both sides
        try job.lab.heal()
        #expect(try job.finish(c, workers: ws))
        #expect(try resultBytes(job.out) == reference)
        let reliability = try readJSON(job.out + "/manifest.json")["reliability"] as? [String: Any]
        #expect((reliability?["workers_lost"] as? Int ?? 0) >= 1, "the partition was felt: workers were declared lost")
        #expect(ws.allSatisfy { !$0.isRunning && $0.terminationStatus == 0 }, "every worker was told the job is over")
    }

    @Test("--max-failures 1 and a partition: the workers cut off come back as the same processes, their shards are uncharged, no poison")
    func partitionIsNotPoison() throws {
        let job = try CrossHostJob(hosts: 2); defer { job.remove() }
        let reference = try job.reference()
        let (a, b) = (job.lab.hosts[0], job.lab.hosts[1])
        // One failed attempt would make a shard poison; a shard held for its verdict waits 10 s.
        let c = try job.coordinator(on: a, port: 5555, extra: ["--out", job.out, "--max-failures", "1"])
        let ws = try job.workers(2, on: b, coordinator: "tcp://\(a.address):5555")
        #expect(job.waitUntilUnderWay())
        try job.lab.partition(a, from: [b])
        sleep(3) // longer than the 1.5-s liveness: the workers are declared dead, their running shards charged
        try job.lab.heal()
        #expect(try job.finish(c, workers: ws))
        #expect(try resultBytes(job.out) == reference)
        let log = job.logText("coordinator")
        #expect(log.contains("worker lost"), "the partition was felt")
        #expect(log.contains("did not crash on its shard, which is uncharged"), "\(log.suffix(3000))")
        #expect(!log.contains("may crash or hang every worker"))
    }

    @Test("1 % of packets dropped at random on both hosts: the same bits")
    func randomLoss() throws {
        let job = try CrossHostJob(hosts: 2); defer { job.remove() }
        let reference = try job.reference()
        let (a, b) = (job.lab.hosts[0], job.lab.hosts[1])
        try job.lab.loss(a, percent: 1)
        try job.lab.loss(b, percent: 1)
        let c = try job.coordinator(on: a, port: 5555, extra: ["--out", job.out])
        let ws = try job.workers(2, on: b, coordinator: "tcp://\(a.address):5555")
        #expect(try job.finish(c, workers: ws))
        #expect(try resultBytes(job.out) == reference)
    }

    @Test("workers cut off from a stand-alone collector say so, naming it; the coordinator reports the uncollected shards; healed, the bits match")
    func unreachableCollector() throws {
        let job = try CrossHostJob(hosts: 3); defer { job.remove() }
        let reference = try job.reference()
        let (a, b, k) = (job.lab.hosts[0], job.lab.hosts[1], job.lab.hosts[2])
        let collectorEndpoint = "tcp://\(k.address):5556"
        let collector = try job.lab.start(
            on: k, Repository.loomBinary, ["collector", "--insecure", "--bind", collectorEndpoint, "--out", job.out],
            stderrPath: job.log("collector"))
        defer { waitOrKill(collector, timeout: 10) }
        try job.lab.partition(k, from: [b])
        let c = try job.coordinator(on: a, port: 5555, extra: ["--collector", collectorEndpoint])
        let ws = try job.workers(2, on: b, coordinator: "tcp://\(a.address):5555")
        // Within seconds the workers name the collector they cannot reach; within the collect
        // timeout (10 s) the coordinator names the shards that went nowhere.
        let deadline = Date().addingTimeInterval(30)
        while Date() < deadline
            && !(job.logText("worker0").contains("cannot reach the collector at \(collectorEndpoint)")
                && job.logText("coordinator").contains("computed but never collected"))
        {
            usleep(100_000)
        }
        #expect(job.logText("worker0").contains("cannot reach the collector at \(collectorEndpoint)"))
        #expect(job.logText("coordinator").contains("computed but never collected"))
        #expect(!FileManager.default.fileExists(atPath: job.out + "/manifest.json"))
        try job.lab.heal()
        #expect(try job.finish(c, workers: ws))
        #expect(try resultBytes(job.out) == reference)
    }
}
