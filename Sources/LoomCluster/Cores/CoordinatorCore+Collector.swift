import Logging
import LoomProduct

/// The coordinator's side of its collector: the claim, acknowledgements, and a collector lost.
extension CoordinatorCore {
    mutating func fromCollector(_ m: WireMessage, now: Double, _ out: inout [Directive]) {
        collectorSeen = now
        switch m {
        case .heartbeat(let held):
            if collector == .ready && held != jobId {
                // A collector answers that does not hold the job: it was restarted.
                out.append(.log(.warning, "the collector was restarted; re-queueing the shards in flight and sending it the job again"))
                loseCollector(now: now, &out)
            }
        case .collectorReady(let id, let resumed):
            guard id == jobId else { return }
            switch collector {
            case .ready:
                return
            case .lost:
                // A restarted collector: what its journal holds is done; anything handed out while it
                // was away may have been dropped, so it runs again.
                out.append(.log(.notice, "collector back", ["complete": "\(resumed.count)"]))
                collector = .ready
                acknowledge(resumed, now: now, &out)
                scheduler.paused = false
                apply(scheduler.collectorLost(now: now), now: now, &out)
            case .claiming:
                resumedShards = resumed.count
                if !resumed.isEmpty { out.append(.log(.notice, "resuming", ["complete": "\(resumed.count)", "of": "\(plan.shardCount)"])) }
                collector = .ready
                acknowledge(resumed, now: now, &out)
                scheduler.paused = false
                for w in waiting { sendJob(w, now: now, &out) }
                waiting.removeAll()
            }
        case .ack(let id, let shards, let totals):
            guard id == jobId else { return }
            collectorTotals = totals
            acknowledge(shards, now: now, &out)
        case .copies(let id, let copies):
            guard id == jobId else { return }
            received(copies, now: now, &out)
        case .redone(let id, let shards):
            guard id == jobId else { return }
            redone(shards, now: now, &out)
        case .finished(let ok, let text):
            guard ok else { return fail("the collector could not publish the result: \(text)", &out) }
            for w in scheduler.workers where names[w] != nil { out.append(.send(.end(ok: true, reason: "done"), to: w)) }
            outcome = .done(workers: everJoined.count)
            out.append(.exit(outcome!))
        case .error(_, _, let text):
            fail(text, &out)
        default:
            out.append(.log(.warning, "unexpected message from the collector", ["type": "\(m.type)"]))
        }
    }

    mutating func acknowledge(_ shards: [Int], now: Double, _ out: inout [Directive]) {
        let before = scheduler.completed
        var examples = 0
        for s in shards where s >= 0 && s < plan.shardCount && !scheduler.isDone(s) { examples += plan.range(of: s).count }
        apply(scheduler.acknowledge(shards, now: now), now: now, &out)
        if scheduler.completed > before { examplesDone += examples }
    }

    mutating func loseCollector(now: Double, _ out: inout [Directive]) {
        collector = .lost
        scheduler.paused = true
        apply(scheduler.collectorLost(now: now), now: now, &out)
    }
}
