import LoomCluster
import Testing

@Suite("Verification: which shards are computed twice, and what a disagreement decides")
struct VerificationCoreTests {
    let a = PeerID(Array("a".utf8)), b = PeerID(Array("b".utf8)), c = PeerID(Array("c".utf8))
    let good = [UInt8](repeating: 1, count: 32), bad = [UInt8](repeating: 2, count: 32), other = [UInt8](repeating: 3, count: 32)

    func written(_ shard: Int, by worker: String, _ digest: [UInt8]) -> WireMessage.Copy {
        .init(shard: shard, worker: worker, digest: digest, written: true)
    }
    func again(_ shard: Int, by worker: String, _ digest: [UInt8]) -> WireMessage.Copy {
        .init(shard: shard, worker: worker, digest: digest, written: false)
    }

    @Test("the selection is a fraction of the shards, the same for the same job, different for another")
    func selection() {
        let v = Verification(fraction: 0.1, jobId: "job-1", shardCount: 100_000)
        let picked = (0..<100_000).filter { v.isSelected($0) }
        #expect(abs(picked.count - 10_000) < 400, "\(picked.count)")
        #expect(picked == (0..<100_000).filter { Verification(fraction: 0.1, jobId: "job-1", shardCount: 100_000).isSelected($0) })
        #expect(picked != (0..<100_000).filter { Verification(fraction: 0.1, jobId: "job-2", shardCount: 100_000).isSelected($0) })
        #expect((0..<1000).allSatisfy { Verification(fraction: 1, jobId: "j", shardCount: 1000).isSelected($0) })
        #expect(!(0..<1000).contains { Verification(fraction: 0, jobId: "j", shardCount: 1000).isSelected($0) })
    }

    @Test("a check goes to a worker other than the writer; an equal copy verifies the shard")
    func agreement() {
        var v = Verification(fraction: 1, jobId: "j", shardCount: 4)
        #expect(v.copy(written(2, by: "A", good)) == nil)
        #expect(v.nextCheck(for: a, worker: "A", now: 0) == nil, "never the writer")
        #expect(v.nextCheck(for: b, worker: "B", now: 0) == 2)
        #expect(v.nextCheck(for: c, worker: "C", now: 0) == nil, "one copy at a time")
        // A speculative duplicate from someone not asked is not a vote.
        #expect(v.copy(again(2, by: "C", bad)) == nil)
        #expect(!v.isSettled)
        #expect(v.copy(again(2, by: "B", good)) == nil)
        #expect(v.isSettled && v.summary.verified == 1 && v.summary.mismatches == 0)
    }

    @Test("a mismatch goes to a third worker; the one it disagrees with is quarantined, and the shards it wrote are redone")
    func votes() {
        // The written copy was wrong: its writer loses, and every shard it wrote is computed again.
        var v = Verification(fraction: 1, jobId: "j", shardCount: 4)
        _ = v.copy(written(0, by: "A", bad))
        _ = v.copy(written(1, by: "A", good))
        _ = v.copy(written(3, by: "C", good))
        #expect(v.nextCheck(for: b, worker: "B", now: 0) == 0)
        #expect(v.copy(again(0, by: "B", good)) == nil)
        #expect(v.summary.mismatches == 1)
        #expect(v.nextCheck(for: b, worker: "B", now: 0) == 1, "B has sent shard 0 already; it takes the next")
        #expect(v.nextCheck(for: c, worker: "C", now: 0) == 0)
        #expect(v.copy(again(0, by: "C", good)) == .quarantine(worker: "A", shard: 0, redo: [0, 1]))
        #expect(v.isQuarantined("A") && v.nextCheck(for: a, worker: "A", now: 0) == nil)
        // The verifier was wrong: it loses; the written copy stands.
        var w = Verification(fraction: 1, jobId: "j", shardCount: 4)
        _ = w.copy(written(0, by: "A", good))
        _ = w.nextCheck(for: b, worker: "B", now: 0)
        _ = w.copy(again(0, by: "B", bad))
        _ = w.nextCheck(for: c, worker: "C", now: 0)
        #expect(w.copy(again(0, by: "C", good)) == .quarantine(worker: "B", shard: 0, redo: []))
        #expect(w.summary.verified == 1 && w.summary.quarantined == ["B"])
        // Three answers: nobody can be trusted.
        var x = Verification(fraction: 1, jobId: "j", shardCount: 4)
        _ = x.copy(written(0, by: "A", good))
        _ = x.nextCheck(for: b, worker: "B", now: 0)
        _ = x.copy(again(0, by: "B", bad))
        _ = x.nextCheck(for: c, worker: "C", now: 0)
        #expect(x.copy(again(0, by: "C", other)) == .irreconcilable(shard: 0, workers: ["A", "B", "C"]))
    }

    @Test("a lost worker's check goes to another; checks nobody may take are given up at the end, a mismatch fails")
    func lostAndAbandoned() {
        var v = Verification(fraction: 1, jobId: "j", shardCount: 4)
        _ = v.copy(written(0, by: "A", good))
        #expect(v.nextCheck(for: b, worker: "B", now: 0) == 0)
        v.lost(b)
        #expect(v.nextCheck(for: c, worker: "C", now: 1) == 0)
        #expect(v.expire(now: 200, timeout: 120).isEmpty)
        // Only the writer is connected: nothing can verify shard 0.
        #expect(v.abandon(connected: ["A"]).isEmpty)
        #expect(v.isSettled && v.summary.unverified == 1)
        // A mismatch with no third worker is returned, to fail the job.
        var w = Verification(fraction: 1, jobId: "j", shardCount: 4)
        _ = w.copy(written(0, by: "A", good))
        _ = w.nextCheck(for: b, worker: "B", now: 0)
        _ = w.copy(again(0, by: "B", bad))
        #expect(w.abandon(connected: ["A", "B"]) == [0])
    }
}
