import LoomCluster
import Testing

private let coordinator = PeerID(Array("coordinator".utf8))
private let intruder = PeerID(Array("intruder".utf8))

/// A core that has claimed job "job" of `shards` shards, with `resumed` in its journal.
private func claimed(shards: Int, resumed: [Int] = []) -> CollectorCore {
    var core = CollectorCore()
    #expect(core.handle(.collect(coordinator, jobId: "job", shardCount: shards), now: 0) == [.claim])
    let d = core.handle(.claimed(resumed: resumed), now: 0)
    #expect(d.contains(.send(.collectorReady(jobId: "job", resumed: resumed.filter { $0 < shards }), to: coordinator)))
    return core
}

@Suite("the collector core (no sockets, no files)")
struct CollectorCoreTests {
    @Test("each shard is written once; commits come in groups, then acks; a duplicate is acknowledged again only once durable")
    func writeOnceAndCommit() {
        var core = claimed(shards: 4)
        #expect(core.handle(.result(w1, jobId: "job", shards: [0, 1]), now: 1) == [.write([0, 1])])
        #expect(core.handle(.written([0, 1], refused: nil, from: w1, bytes: 800), now: 1).isEmpty) // not due yet
        // A speculative copy of shard 1 arrives before the commit: nothing to write, nothing to ack yet.
        #expect(core.handle(.result(w2, jobId: "job", shards: [1]), now: 1.01).isEmpty)
        // Each ack carries the collector's totals: duplicates dropped and result bytes written.
        #expect(
            core.handle(.tick, now: 1.06) == [
                .commit([0, 1]), .send(.ack(jobId: "job", shards: [0, 1], totals: .init(duplicates: 1, resultBytes: 800)), to: coordinator)
            ])
        // Once durable, a duplicate is acknowledged again (the first ack may have been lost).
        #expect(
            core.handle(.result(w2, jobId: "job", shards: [1]), now: 2) == [
                .send(.ack(jobId: "job", shards: [1], totals: .init(duplicates: 2, resultBytes: 800)), to: coordinator)
            ])
        #expect(core.duplicates == 2)
        // The last shard in is committed at once.
        _ = core.handle(.result(w1, jobId: "job", shards: [2, 3]), now: 3)
        #expect(
            core.handle(.written([2, 3], refused: nil, from: w1, bytes: 500), now: 3) == [
                .commit([2, 3]), .send(.ack(jobId: "job", shards: [2, 3], totals: .init(duplicates: 2, resultBytes: 1300)), to: coordinator)
            ])
        #expect(core.resultBytes == 1300)
    }

    @Test("a resumed journal counts; finish publishes only when every shard is in, and only from the job's coordinator")
    func finish() {
        var core = claimed(shards: 3, resumed: [0, 2, 7])
        let f = WireMessage.Finish(jobId: "job", workers: 1, bytesToWorkers: 0, workersLost: 0, leasesExpired: 0, shardsReissued: 0)
        #expect(core.handle(.finish(intruder, f), now: 1).allSatisfy { if case .log = $0 { true } else { false } })
        #expect(core.refusedMessages == 1 && !core.finished)
        _ = core.handle(.result(w1, jobId: "job", shards: [1]), now: 1)
        _ = core.handle(.written([1], refused: nil, from: w1), now: 1)
        #expect(core.handle(.finish(coordinator, f), now: 2) == [.publish(f)])
        #expect(core.handle(.published, now: 2) == [.send(.finished(ok: true, message: ""), to: coordinator), .log(.info, "published"), .exit(failure: nil)])
    }

    @Test("finish with shards missing is refused in the reply; a job id or shard not of the job is refused; only the coordinator ends the job")
    func refusals() {
        var core = claimed(shards: 2)
        #expect(core.handle(.result(w1, jobId: "other", shards: [0]), now: 1).allSatisfy { if case .log = $0 { true } else { false } })
        #expect(core.handle(.result(w1, jobId: "job", shards: [0, 5]), now: 1).allSatisfy { if case .log = $0 { true } else { false } })
        #expect(core.handle(.end(intruder, ok: false, reason: "forged"), now: 1).allSatisfy { if case .log = $0 { true } else { false } })
        #expect(core.refusedMessages == 3 && !core.finished)
        let f = WireMessage.Finish(jobId: "job", workers: 1, bytesToWorkers: 0, workersLost: 0, leasesExpired: 0, shardsReissued: 0)
        let d = core.handle(.finish(coordinator, f), now: 2)
        #expect(d.contains(.send(.finished(ok: false, message: "told to finish with 0 of 2 shards written"), to: coordinator)))
        #expect(core.finished)
    }

    @Test("a restarted collector holds no job: its heartbeat says so; the coordinator's collect gets the same answer twice")
    func heartbeatAndRepeat() {
        var fresh = CollectorCore()
        #expect(fresh.handle(.heartbeat(coordinator), now: 0) == [.send(.heartbeat(job: ""), to: coordinator)])
        var core = claimed(shards: 2, resumed: [1])
        #expect(
            core.handle(.collect(coordinator, jobId: "job", shardCount: 2), now: 1) == [.send(.collectorReady(jobId: "job", resumed: [1]), to: coordinator)])
        #expect(core.handle(.heartbeat(coordinator), now: 1) == [.send(.heartbeat(job: "job"), to: coordinator)])
    }

    @Test("before a job, an end from anyone but the coordinator that asked for it is refused (found by the live fuzz)")
    func strayEndBeforeJob() {
        var idle = CollectorCore()
        #expect(idle.handle(.end(intruder, ok: true, reason: "forged"), now: 0).allSatisfy { if case .log = $0 { true } else { false } })
        #expect(!idle.finished)
        var claiming = CollectorCore()
        _ = claiming.handle(.collect(coordinator, jobId: "job", shardCount: 2), now: 0)
        _ = claiming.handle(.end(intruder, ok: false, reason: "forged"), now: 0)
        #expect(!claiming.finished)
        #expect(
            claiming.handle(.end(coordinator, ok: false, reason: "cannot load"), now: 0).contains(.exit(failure: "the coordinator ended the job: cannot load")))
    }
}
