import LoomCluster
import Testing

let w1 = PeerID(Array("w1".utf8)), w2 = PeerID(Array("w2".utf8)), w3 = PeerID(Array("w3".utf8))

/// `value`, changed by `change`.
func with<T>(_ value: T, _ change: (inout T) -> Void) -> T {
    var v = value
    change(&v)
    return v
}

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

    @Test("without speculation every shard is assigned once; finish comes exactly once, after the last acknowledgement")
    func completion() {
        var policy = Scheduler.Policy()
        policy.speculate = false
        var s = Scheduler(shardCount: 7, policy: policy)
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
        #expect(s.reissued == 0)
        _ = s.grant(w1, 3) // 0, 1, 2
        _ = s.acknowledge([1])
        let d = assigned(s.leave(w1))
        #expect(d.isEmpty, "no one has credit yet")
        #expect(assigned(s.grant(w2, 3)).map(\.0) == [0, 2, 3])
        #expect(s.reissued == 2)
        #expect(s.deadWorkers == 1)
        #expect(s.failureCount(0) == 1, "the shard it was computing is charged")
        #expect(s.failureCount(2) == 0, "the shard waiting behind it is not")
    }

    @Test("an expired lease hands the shard to another worker; the first acknowledgement wins")
    func lease() {
        var policy = Scheduler.Policy()
        policy.lease = 10
        policy.speculate = false
        var s = Scheduler(shardCount: 3, policy: policy)
        #expect(assigned(s.grant(w1, 1, now: 0)).map(\.0) == [0])
        _ = s.grant(w2, 0, now: 0)
        #expect(assigned(s.tick(now: 5)).isEmpty, "the lease has not run out")
        #expect(assigned(s.tick(now: 11)).isEmpty, "re-queued, but nobody has credit")
        #expect(s.expiredLeases == 1)
        #expect(assigned(s.grant(w2, 1, now: 11)).map(\.0) == [0], "the stalled shard goes out first")
        #expect(s.acknowledge([0], now: 12).isEmpty)
        #expect(s.acknowledge([0], now: 13).isEmpty, "a late duplicate changes nothing")
        #expect(s.completed == 1)
    }

    @Test("stragglers: with the queue empty, an idle worker runs the shards in flight again, once, the last given out first")
    func speculation() {
        var s = Scheduler(shardCount: 2)
        _ = s.grant(w1, 2, now: 0) // 0 and 1 on w1: 0 computing, 1 waiting behind it
        let extra = assigned(s.grant(w2, 2, now: 1))
        #expect(extra.map(\.0) == [1, 0], "both in-flight shards are run again on the idle worker, the waiting one first")
        #expect(extra.allSatisfy { $0.1 == w2 })
        #expect(assigned(s.grant(w2, 2, now: 2)).isEmpty, "each shard is speculated once")
        _ = s.acknowledge([0, 1], now: 3)
        #expect(s.isComplete)
    }

    @Test("a shard reported computed is not a straggler: its result is on the way, so it is not run again")
    func noSpeculationOfComputed() {
        var s = Scheduler(shardCount: 2)
        _ = s.grant(w1, 2, now: 0) // 0 and 1 on w1
        s.computed(w1, [0])
        let extra = assigned(s.grant(w2, 2, now: 1))
        #expect(extra.map(\.0) == [1], "only the shard not yet computed is run again")
        _ = s.acknowledge([0, 1], now: 2)
        #expect(s.isComplete)
    }

    @Test("a shard that kills three workers fails the job, naming the shard, once its verdict delay has passed")
    func poison() {
        var s = Scheduler(shardCount: 5)
        var d: [Scheduler.Directive] = []
        for (i, w) in [w1, w2, w3].enumerated() {
            d = s.grant(w, 1, now: Double(i))
            #expect(assigned(d).first?.0 == 0, "shard 0 goes out first each time")
            d = s.leave(w, now: Double(i) + 0.5)
        }
        #expect(!d.contains { if case .poison = $0 { true } else { false } }, "held, not yet failed")
        #expect(d.contains(.held(shard: 0, failures: 3, seconds: 10)), "and the shell is told, to say so")
        #expect(s.heldForVerdict == [0])
        let w4 = PeerID(Array("w4".utf8))
        #expect(!assigned(s.grant(w4, 5, now: 3)).map(\.0).contains(0), "a held shard is given to no one")
        #expect(!s.tick(now: 2.5 + 9.9).contains { if case .poison = $0 { true } else { false } })
        #expect(s.tick(now: 2.5 + 10).first == .poison(shard: 0, failures: 3, cause: "the worker running it died or went silent"))
        var at = Scheduler(shardCount: 1, policy: with(Scheduler.Policy()) { $0.verdictDelay = 0 })
        for w in [w1, w2] {
            _ = at.grant(w, 1)
            _ = at.leave(w)
        }
        _ = at.grant(w3, 1)
        #expect(at.leave(w3).first == .poison(shard: 0, failures: 3, cause: "the worker running it died or went silent"), "no delay: at once")
    }

    @Test("a dead worker that turns out to be alive withdraws its charge: three deaths, one only a cut, are no verdict")
    func forgiveness() {
        var s = Scheduler(shardCount: 3)
        for (i, w) in [w1, w2, w3].enumerated() {
            _ = s.grant(w, 1, now: Double(i))
            _ = s.leave(w, now: Double(i) + 0.5)
        }
        #expect(s.failureCount(0) == 3 && s.heldForVerdict == [0])
        #expect(s.charge(of: w2) == 0)
        // w2's process comes back: the shard is uncharged and handed out again at once.
        let w4 = PeerID(Array("w4".utf8))
        _ = s.grant(w4, 1, now: 4) // shard 1: the held shard 0 is skipped
        let back = s.forgive(w2, now: 5)
        #expect(s.failureCount(0) == 2 && s.forgivenCount(0) == 1 && s.heldForVerdict.isEmpty)
        #expect(s.charge(of: w2) == nil)
        #expect(back.isEmpty, "w4 has no credit left")
        #expect(assigned(s.grant(w4, 1, now: 5)).map(\.0) == [0])
        #expect(!s.tick(now: 20).contains { if case .poison = $0 { true } else { false } })
        #expect(s.forgive(w2, now: 6).isEmpty && s.failureCount(0) == 2, "a charge is withdrawn once")
        _ = s.acknowledge([0, 1, 2], now: 7)
        #expect(s.isComplete)
    }

    @Test("at most maxFailures charges of a shard are withdrawn: one that keeps cutting workers off still fails")
    func forgivenessBound() {
        var s = Scheduler(shardCount: 1)
        var failed = false
        for round in 0..<20 where !failed {
            let w = PeerID(Array("w\(round)".utf8))
            let t = Double(round) * 20
            _ = s.grant(w, 1, now: t)
            failed = s.leave(w, now: t + 1).contains { if case .poison = $0 { true } else { false } }
            _ = s.forgive(w, now: t + 2)
            failed = failed || s.tick(now: t + 15).contains { if case .poison = $0 { true } else { false } }
        }
        #expect(failed)
        #expect(s.forgivenCount(0) == 3)
    }

    @Test("a lease that runs out is charged for good: that worker was alive")
    func leaseChargeStands() {
        var s = Scheduler(shardCount: 2, policy: with(Scheduler.Policy()) { $0.lease = 5 })
        _ = s.grant(w1, 1, now: 0)
        _ = s.tick(now: 6)
        #expect(s.failureCount(0) == 1 && s.charge(of: w1) == nil)
        #expect(s.forgive(w1, now: 7).isEmpty && s.failureCount(0) == 1)
    }

    @Test("a shard given to a worker already silent is not charged when that worker is declared dead")
    func silentWorker() {
        var s = Scheduler(shardCount: 5)
        s.heard(w1, now: 0)
        _ = s.grant(w1, 1, now: 0) // shard 0, while w1 is alive
        _ = s.acknowledge([0], now: 0.1)
        #expect(assigned(s.grant(w1, 1, now: 5)).map(\.0) == [1], "w1 last heard 5 s ago")
        _ = s.leave(w1, now: 6)
        #expect(s.failureCount(1) == 0, "shard 1 never ran on the silent worker")
    }

    @Test("a resumed job only hands out the shards not already complete")
    func resume() {
        var s = Scheduler(shardCount: 5, alreadyDone: [0, 1, 3])
        #expect(s.completed == 3)
        let d = s.grant(w1, 5)
        #expect(assigned(d).map(\.0) == [2, 4])
        #expect(s.acknowledge([2, 4]) == [.finish])
        var all = Scheduler(shardCount: 2, alreadyDone: [0, 1])
        #expect(all.isComplete)
        #expect(all.acknowledge([]) == [.finish])
    }

    @Test("no workers, no assignments; unknown shard numbers are ignored")
    func edges() {
        var s = Scheduler(shardCount: 2)
        #expect(s.acknowledge([-1, 5]).isEmpty)
        #expect(s.completed == 0)
        var empty = Scheduler(shardCount: 0)
        #expect(assigned(empty.grant(w1, 2)).isEmpty)
    }

    @Test("shards a dead worker held become careful (sent one per message from then on); others do not")
    func careful() {
        var s = Scheduler(shardCount: 10)
        _ = s.grant(w1, 3, now: 0) // 0, 1, 2
        _ = s.grant(w2, 2, now: 0) // 3, 4
        #expect(s.careful.isEmpty)
        _ = s.leave(w1, now: 1)
        #expect(s.careful == [0, 1, 2])
        _ = s.leave(w2, now: 1, dead: false) // a worker that left cleanly makes nothing careful
        #expect(s.careful == [0, 1, 2])
    }

    @Test("shards whose message could not be sent are not charged when the worker is then buried")
    func undelivered() {
        var s = Scheduler(shardCount: 10)
        s.heard(w1, now: 0)
        let first = assigned(s.grant(w1, 2, now: 0)).map(\.0) // 0, 1: sent, and the worker dies
        _ = s.leave(w1, now: 0.1)
        #expect(s.failureCount(first[0]) == 1)
        // w2 is given shard 0 again, but its connection is gone: the send fails.
        s.heard(w2, now: 0.1)
        let again = assigned(s.grant(w2, 1, now: 0.1)).map(\.0)
        #expect(again == [0])
        s.undelivered(w2, again)
        _ = s.leave(w2, now: 0.2)
        #expect(s.failureCount(0) == 1, "the failed send does not count against the shard")
        // The shard is still to be done: the next worker gets it first.
        #expect(assigned(s.grant(w3, 1, now: 0.3)).map(\.0) == [0])
    }

    @Test("a shard computed but never collected goes back to the queue after collectTimeout, uncharged, and is reported")
    func uncollected() {
        var policy = Scheduler.Policy()
        policy.collectTimeout = 5
        policy.speculate = false
        var s = Scheduler(shardCount: 4, policy: policy)
        #expect(assigned(s.grant(w1, 2, now: 0)).map(\.0) == [0, 1])
        s.computed(w1, [0, 1], now: 1)
        #expect(s.acknowledge([1], now: 2).isEmpty)
        #expect(assigned(s.tick(now: 5.9)).isEmpty, "within the timeout nothing moves")
        let d = s.tick(now: 6.1)
        #expect(d.contains(.uncollected(worker: w1, shards: [0])))
        #expect(s.failureCount(0) == 0, "a result lost on the way is not the shard's fault")
        #expect(s.reissued == 1)
        // It goes out first, to whoever has credit; a late original is a harmless duplicate.
        #expect(assigned(s.grant(w2, 1, now: 7)).map(\.0) == [0])
        #expect(s.acknowledge([0, 2, 3], now: 8) == [.finish])
        #expect(s.remaining == 0)
    }

    @Test("a computed report that is acknowledged in time never reclaims the shard")
    func collectedInTime() {
        var policy = Scheduler.Policy()
        policy.collectTimeout = 5
        var s = Scheduler(shardCount: 2, policy: policy)
        _ = s.grant(w1, 2, now: 0)
        s.computed(w1, [0, 1], now: 1)
        _ = s.acknowledge([0, 1], now: 2)
        #expect(!s.tick(now: 100).contains { if case .uncollected = $0 { true } else { false } })
    }
}
