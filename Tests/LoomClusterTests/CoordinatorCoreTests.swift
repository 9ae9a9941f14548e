import LoomCluster
import LoomProduct
import Testing

/// A core for a job of `shards` one-example shards, its collector ready at t = 0.
private func readyCore(shards: Int = 10, configure: (inout CoordinatorCore.Settings) -> Void = { _ in }) throws -> CoordinatorCore {
    var settings = CoordinatorCore.Settings()
    configure(&settings)
    var core = CoordinatorCore(
        jobId: "job", modelSha256: String(repeating: "a", count: 64),
        plan: try ShardPlan(examples: shards, batchSize: 1), settings: settings, collectorName: "tcp://c:1")
    _ = core.start(now: 0)
    _ = core.handle(.collector(.collectorReady(jobId: "job", resumed: [])), now: 0)
    return core
}

private func hello(_ name: String) -> WireMessage { .hello(.init(worker: name, pid: 1, host: "h", cachedModels: [])) }

private func shardsSent(_ d: [CoordinatorCore.Directive], to w: PeerID? = nil) -> [Int] {
    d.flatMap { (directive: CoordinatorCore.Directive) -> [Int] in
        if case .sendShards(let s, let to) = directive, w == nil || to == w { return s }
        return []
    }
}

private func sent(_ m: WireMessage, to w: PeerID, in d: [CoordinatorCore.Directive]) -> Bool {
    d.contains(.send(m, to: w))
}

@Suite("the coordinator core (no sockets)")
struct CoordinatorCoreTests {
    @Test("workers that join before the collector is ready get the job when it is; credit brings shards")
    func joinAndDispatch() throws {
        var core = CoordinatorCore(
            jobId: "job", modelSha256: String(repeating: "a", count: 64),
            plan: try ShardPlan(examples: 4, batchSize: 1), collectorName: "c")
        #expect(core.start(now: 0) == [.collect])
        let early = core.handle(.worker(w1, hello("one")), now: 0.1)
        #expect(!early.contains(.sendJob(to: w1)))
        #expect(core.handle(.tick, now: 1.2).contains(.collect))
        let ready = core.handle(.collector(.collectorReady(jobId: "job", resumed: [1])), now: 1.3)
        #expect(ready.contains(.sendJob(to: w1)))
        // A repeated hello queued meanwhile does not resend the job (it would restart the worker).
        #expect(!core.handle(.worker(w1, hello("one")), now: 1.4).contains(.sendJob(to: w1)))
        #expect(core.handle(.worker(w1, .needModel(sha256: String(repeating: "a", count: 64))), now: 1.5) == [.sendModel(to: w1)])
        let d = core.handle(.worker(w1, .ready(jobId: "job", credit: 8, computed: [])), now: 1.6)
        #expect(shardsSent(d, to: w1) == [0, 2, 3]) // one message; shard 1 was resumed
        #expect(core.examplesDone == 1)
    }

    @Test("a silent worker is declared lost and its shards go to another; if heard again it is told to rejoin, once a second")
    func silentWorker() throws {
        var core = try readyCore(shards: 4)
        _ = core.handle(.worker(w1, hello("one")), now: 0)
        _ = core.handle(.worker(w2, hello("two")), now: 0)
        #expect(shardsSent(core.handle(.worker(w1, .ready(jobId: "job", credit: 2, computed: [])), now: 0.1)) == [0, 1])
        #expect(shardsSent(core.handle(.worker(w2, .ready(jobId: "job", credit: 2, computed: [])), now: 0.1)) == [2, 3])
        for t in stride(from: 1.0, through: 3.0, by: 1) {
            _ = core.handle(.worker(w2, .heartbeat(job: "")), now: t)
            _ = core.handle(.tick, now: t)
        }
        let d = core.handle(.tick, now: 4.0)
        #expect(d.contains { if case .log(.warning, "worker lost", _) = $0 { true } else { false } })
        _ = core.handle(.worker(w2, .ready(jobId: "job", credit: 2, computed: [])), now: 4.1)
        #expect(core.workerCount == 1)
        // Its late words get `rejoin`, at most once a second, and are not taken as reports.
        #expect(sent(.rejoin, to: w1, in: core.handle(.worker(w1, .ready(jobId: "job", credit: 5, computed: [0])), now: 4.2)))
        #expect(core.handle(.worker(w1, .heartbeat(job: "")), now: 4.5).isEmpty)
        #expect(sent(.rejoin, to: w1, in: core.handle(.worker(w1, .heartbeat(job: "")), now: 5.3)))
    }

    @Test("a worker declared dead that is heard again, or joins anew under the same name, withdraws its shard's charge")
    func deadWorkerAlive() throws {
        var core = try readyCore(shards: 4)
        _ = core.handle(.worker(w1, hello("one")), now: 0)
        _ = core.handle(.worker(w2, hello("two")), now: 0)
        _ = core.handle(.worker(w3, hello("three")), now: 0)
        #expect(shardsSent(core.handle(.worker(w1, .ready(jobId: "job", credit: 1, computed: [])), now: 0.1)) == [0])
        #expect(shardsSent(core.handle(.worker(w2, .ready(jobId: "job", credit: 1, computed: [])), now: 0.1)) == [1])
        for t in stride(from: 1.0, through: 5.0, by: 1) {
            _ = core.handle(.worker(w3, .heartbeat(job: "")), now: t)
            _ = core.handle(.collector(.heartbeat(job: "job")), now: t)
            _ = core.handle(.tick, now: t)
        }
        #expect(core.workerCount == 1, "one and two went silent and were declared lost")
        #expect(core.scheduler.failureCount(0) == 1 && core.scheduler.failureCount(1) == 1)
        // One's connection speaks again (it was stalled): alive, so shard 0 is uncharged.
        let stalled = core.handle(.worker(w1, .heartbeat(job: "")), now: 5.2)
        #expect(stalled.contains { if case .log(.notice, _, let m) = $0 { m["shard"] == "0" } else { false } })
        #expect(core.scheduler.failureCount(0) == 0)
        // Two comes back on a new connection (its old one was cut): the same process, so shard 1 is uncharged.
        let w4 = PeerID(Array("w4".utf8))
        _ = core.handle(.worker(w4, hello("two")), now: 5.3)
        #expect(core.scheduler.failureCount(1) == 0)
        // A new process (another name) proves nothing about the old one.
        #expect(shardsSent(core.handle(.worker(w3, .ready(jobId: "job", credit: 1, computed: [])), now: 5.4), to: w3).count == 1)
        for t in stride(from: 6.0, through: 9.0, by: 1) {
            _ = core.handle(.worker(w4, .heartbeat(job: "")), now: t)
            _ = core.handle(.collector(.heartbeat(job: "job")), now: t)
            _ = core.handle(.tick, now: t)
        }
        let charged = (0..<4).filter { core.scheduler.failureCount($0) == 1 }
        #expect(charged.count == 1, "three's shard, charged when three went silent")
        _ = core.handle(.worker(PeerID(Array("w5".utf8)), hello("three, restarted")), now: 10)
        #expect((0..<4).filter { core.scheduler.failureCount($0) == 1 } == charged)
    }

    @Test("a worker that sends what only other roles send, or asks for the model over and over, is dropped; the job goes on")
    func hostileWorker() throws {
        var core = try readyCore()
        _ = core.handle(.worker(w1, hello("one")), now: 0)
        _ = core.handle(.worker(w2, hello("two")), now: 0)
        let forged = core.handle(
            .worker(w1, .finish(.init(jobId: "job", workers: 0, bytesToWorkers: 0, workersLost: 0, leasesExpired: 0, shardsReissued: 0))), now: 1)
        #expect(!forged.contains { if case .exit = $0 { true } else { false } })
        #expect(core.workerCount == 1 && core.outcome == nil)
        let sha = String(repeating: "a", count: 64)
        for _ in 0..<3 { #expect(core.handle(.worker(w2, .needModel(sha256: sha)), now: 1) == [.sendModel(to: w2)]) }
        #expect(!core.handle(.worker(w2, .needModel(sha256: sha)), now: 1).contains(.sendModel(to: w2)))
        #expect(core.workerCount == 0 && core.outcome == nil)
        // A malformed message drops its sender too.
        _ = core.handle(.worker(w3, hello("three")), now: 2)
        _ = core.handle(.malformed(w3, reason: "garbage"), now: 2)
        #expect(core.workerCount == 0 && core.outcome == nil)
    }

    @Test("the end: every worker is told, and one whose hello comes after is told too")
    func end() throws {
        var core = try readyCore(shards: 2)
        _ = core.handle(.worker(w1, hello("one")), now: 0)
        _ = core.handle(.worker(w1, .ready(jobId: "job", credit: 2, computed: [])), now: 0)
        #expect(core.handle(.collector(.ack(jobId: "job", shards: [0], totals: .init(duplicates: 3, resultBytes: 4096))), now: 1).isEmpty)
        #expect(core.collectorTotals == .init(duplicates: 3, resultBytes: 4096), "the collector's figures are kept for the status and metrics")
        let finish = core.handle(.collector(.ack(jobId: "job", shards: [1, 1, 99])), now: 1)
        #expect(finish.contains { if case .finish(let f) = $0 { f.workers == 1 && f.jobId == "job" } else { false } })
        let done = core.handle(.collector(.finished(ok: true, message: "")), now: 2)
        #expect(done == [.send(.end(ok: true, reason: "done"), to: w1), .exit(.done(workers: 1))])
        #expect(core.handle(.worker(w2, hello("late")), now: 3) == [.send(.end(ok: true, reason: "done"), to: w2)])
    }

    @Test("a restarted collector pauses the job; the job is sent again and goes on from its journal")
    func collectorRestart() throws {
        var core = try readyCore(shards: 4)
        _ = core.handle(.worker(w1, hello("one")), now: 0)
        _ = core.handle(.worker(w1, .ready(jobId: "job", credit: 2, computed: [])), now: 0)
        _ = core.handle(.collector(.ack(jobId: "job", shards: [0])), now: 0.5)
        _ = core.handle(.collector(.heartbeat(job: "")), now: 1) // holds no job: restarted
        let t = core.handle(.tick, now: 1)
        #expect(t.contains(.collect))
        #expect(shardsSent(core.handle(.worker(w1, .ready(jobId: "job", credit: 2, computed: [])), now: 1.1)).isEmpty) // paused
        let back = core.handle(.collector(.collectorReady(jobId: "job", resumed: [0, 1])), now: 1.2)
        #expect(shardsSent(back) == [2, 3])
        #expect(core.examplesDone == 2)
    }

    @Test("--deadline fails the job, telling everyone")
    func deadline() throws {
        var core = try readyCore { $0.deadline = 5 }
        _ = core.handle(.worker(w1, hello("one")), now: 0)
        _ = core.handle(.worker(w1, .heartbeat(job: "")), now: 3)
        #expect(core.handle(.tick, now: 4).allSatisfy { if case .exit = $0 { false } else { true } })
        _ = core.handle(.worker(w1, .heartbeat(job: "")), now: 5)
        let d = core.handle(.tick, now: 5.1)
        #expect(d.contains { if case .send(.end(false, _), w1) = $0 { true } else { false } })
        #expect(d.contains { if case .toCollector(.end(false, _)) = $0 { true } else { false } })
        #expect(core.outcome.map { if case .failed(let r) = $0 { r.contains("--deadline") } else { false } } == true)
    }

    @Test("a collector that never answers is not a silent wait: a warning names it every 10 s")
    func silentCollector() throws {
        var core = CoordinatorCore(
            jobId: "job", modelSha256: String(repeating: "a", count: 64),
            plan: try ShardPlan(examples: 4, batchSize: 1), collectorName: "tcp://c:1")
        _ = core.start(now: 0)
        var warnings = 0
        for t in stride(from: 0.2, through: 25, by: 0.2) {
            warnings +=
                core.handle(.tick, now: t).filter { if case .log(.warning, let text, _) = $0 { text.contains("collector has not answered") } else { false } }
                .count
        }
        #expect(warnings == 2)
    }
}
