import LoomCluster
import Testing

let w1 = PeerID(Array("w1".utf8)), w2 = PeerID(Array("w2".utf8)), w3 = PeerID(Array("w3".utf8))

func assigned(_ d: [Scheduler.Directive]) -> [(Int, PeerID)] {
    d.compactMap { if case .assign(let s, let w) = $0 { (s, w) } else { nil } }
}

@Suite("the scheduler core (no sockets)")
struct SchedulerTests {
    @Test("a worker never holds more shards than its credit")
    func credit() {
        var s = Scheduler(shardCount: 10)
        #expect(assigned(s.grant(w1, 2)).map(\.0) == [0, 1])
        #expect(s.inFlightCount == 2)
        #expect(s.acknowledge([0]).isEmpty)
        #expect(s.inFlightCount == 1)
        // Acknowledging does not grant credit; the worker's READY does.
        #expect(assigned(s.grant(w1, 1)).map(\.0) == [2])
    }

    @Test("late joiners get work at once; shards alternate over workers with credit")
    func fairness() {
        var s = Scheduler(shardCount: 100)
        _ = s.grant(w1, 2)
        let d = assigned(s.grant(w2, 2))
        #expect(d.map(\.0) == [2, 3])
        #expect(d.allSatisfy { $0.1 == w2 })
        _ = s.acknowledge([0, 1, 2, 3])
        s.join(w3)
        let both = assigned(s.grant(w3, 2) + s.grant(w1, 2))
        #expect(Set(both.map(\.1)) == [w1, w3])
    }

    @Test("every shard is assigned once and finish comes exactly once, after the last acknowledgement")
    func completion() {
        var s = Scheduler(shardCount: 7)
        var seen: [Int] = []
        var finishes = 0
        var pending = assigned(s.grant(w1, 3) + s.grant(w2, 3))
        while !pending.isEmpty {
            let (shard, worker) = pending.removeFirst()
            seen.append(shard)
            for d in s.acknowledge([shard]) where d == .finish { finishes += 1 }
            pending += assigned(s.grant(worker, 1))
        }
        #expect(seen.sorted() == Array(0..<7))
        #expect(finishes == 1)
        #expect(s.isComplete)
        #expect(s.acknowledge([3]).isEmpty, "a repeated acknowledgement changes nothing")
    }

    @Test("a worker that leaves gives its unacknowledged shards back, and they go out first")
    func leave() {
        var s = Scheduler(shardCount: 10)
        _ = s.grant(w1, 3)          // 0, 1, 2
        _ = s.acknowledge([1])
        let d = assigned(s.leave(w1))
        #expect(d.isEmpty, "no one has credit yet")
        #expect(assigned(s.grant(w2, 3)).map(\.0) == [0, 2, 3])
    }

    @Test("no workers, no assignments; unknown shard numbers are ignored")
    func edges() {
        var s = Scheduler(shardCount: 2)
        #expect(s.acknowledge([-1, 5]).isEmpty)
        #expect(s.completed == 0)
        var empty = Scheduler(shardCount: 0)
        #expect(assigned(empty.grant(w1, 2)).isEmpty)
    }
}
