import LoomProduct

/// `--verify` in the coordinator: handing checks to workers, acting on the votes of
/// ``Verification``, and holding the finish until every check has settled.
extension CoordinatorCore {
    /// The collector reported copies of shards: each may decide a vote.
    mutating func received(_ copies: [WireMessage.Copy], now: Double, _ out: inout [Directive]) {
        for c in copies {
            guard let decision = verification.copy(c) else { continue }
            decide(decision, now: now, &out)
            if outcome != nil { return }
        }
        dispatchChecks(now: now, &out)
        finishIfDue(now: now, &out)
    }

    /// The collector forgot a quarantined worker's shards: they are handed out again.
    mutating func redone(_ shards: [Int], now: Double, _ out: inout [Directive]) {
        let reopened = shards.filter { redoPending.remove($0) != nil && scheduler.isDone($0) }
        examplesDone -= reopened.reduce(0) { $0 + plan.range(of: $1).count }
        apply(scheduler.reopen(reopened, now: now), now: now, &out)
    }

    /// Every heartbeat: checks that ran out of time, an unanswered `redo` sent again, checks handed
    /// out, the finish if due.
    mutating func verificationTick(now: Double, _ out: inout [Directive]) {
        if let s = verification.expire(now: now, timeout: settings.policy.lease).first { return undecided(s, &out) }
        if !redoPending.isEmpty && now - lastRedo >= settings.heartbeat {
            lastRedo = now
            out.append(.toCollector(.redo(jobId: jobId, shards: redoPending.sorted(), quarantined: verification.quarantined)))
        }
        dispatchChecks(now: now, &out)
        finishIfDue(now: now, &out)
    }

    /// Hands queued checks to workers with credit to spare.
    mutating func dispatchChecks(now: Double, _ out: inout [Directive]) {
        guard verification.isOn, outcome == nil, verification.mayHaveQueued else { return }
        for w in scheduler.workers {
            guard let name = names[w] else { continue }
            while scheduler.credit(of: w) > 0, let s = verification.nextCheck(for: w, worker: name, now: now) {
                _ = scheduler.borrowCredit(from: w)
                out.append(.sendShards([s], to: w))
            }
        }
    }

    mutating func decide(_ decision: Verification.Decision, now: Double, _ out: inout [Directive]) {
        switch decision {
        case .quarantine(let worker, let shard, let redo):
            out.append(
                .log(
                    .warning, "a worker's result differed from two other workers'; it is quarantined and the shards it wrote are computed again",
                    ["worker": "\(worker)", "shard": "\(plan.describe(shard))", "recomputed": "\(redo.count)"]))
            for (w, name) in names where name == worker {
                out.append(
                    .send(.end(ok: false, reason: "this worker is quarantined: its result for \(plan.describe(shard)) differed from two other workers'"), to: w)
                )
                bury(w, why: "quarantined", now: now, dead: false, &out)
            }
            verification.reopened(redo)
            redoPending.formUnion(redo)
            lastRedo = now
            out.append(.toCollector(.redo(jobId: jobId, shards: redo, quarantined: verification.quarantined)))
        case .condemn(let shard, let worker):
            out.append(.log(.notice, "a shard written by a quarantined worker is computed again", ["worker": "\(worker)", "shard": "\(plan.describe(shard))"]))
            redoPending.insert(shard)
            lastRedo = now
            out.append(.toCollector(.redo(jobId: jobId, shards: [shard], quarantined: verification.quarantined)))
        case .irreconcilable(let shard, let workers):
            fail(
                "\(plan.describe(shard)) gave three different results on workers \(workers.joined(separator: ", ")): the model does not give the same bits on these workers (mixed CPUs? name one --kernels set every node has)",
                &out)
        }
    }

    mutating func undecided(_ shard: Int, _ out: inout [Directive]) {
        fail(
            "--verify: two workers computed different results for \(plan.describe(shard)), and no third worker could decide which is right; run with three or more workers",
            &out)
    }

    /// Tells the collector to publish once every shard is acknowledged, nothing is to be redone,
    /// and every check has settled (checks no connected worker may compute are given up).
    mutating func finishIfDue(now: Double, _ out: inout [Directive]) {
        guard finishHeld, outcome == nil, redoPending.isEmpty, scheduler.isComplete else { return }
        if !verification.isSettled {
            if let s = verification.abandon(connected: Set(names.values)).first { return undecided(s, &out) }
            guard verification.isSettled else { return }
        }
        finishHeld = false
        out.append(
            .finish(
                WireMessage.Finish(
                    jobId: jobId, workers: everJoined.count, bytesToWorkers: 0,
                    workersLost: scheduler.deadWorkers, leasesExpired: scheduler.expiredLeases,
                    shardsReissued: scheduler.reissued, verification: verification.isOn ? verification.summary : nil)))
    }
}
