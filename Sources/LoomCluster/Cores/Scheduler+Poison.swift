/// Poison shards: failed attempts, the hold before a verdict, and charges withdrawn when a worker
/// declared dead turns out to be alive.
extension Scheduler {
    /// Counts a failed attempt; returns `.poison` once the shard is poison, or `.held` when it
    /// reaches `maxFailures` and is first held for `verdictDelay` seconds (``forgive(_:now:)``).
    mutating func countFailure(_ shard: Int, why: String, now: Double) -> Directive? {
        failures[shard, default: 0] += 1
        guard failures[shard]! >= policy.maxFailures else { return nil }
        if policy.verdictDelay > 0 && verdicts[shard] == nil && failures[shard]! == policy.maxFailures {
            verdicts[shard] = (now + policy.verdictDelay, why)
            return .held(shard: shard, failures: failures[shard]!, seconds: policy.verdictDelay)
        }
        finished = true
        return .poison(shard: shard, failures: failures[shard]!, cause: why)
    }

    /// The first held shard whose verdict is due and that is still poison; held shards whose charges
    /// were withdrawn, or that were completed meanwhile, go back to the queue or are dropped.
    mutating func dueVerdict(now: Double) -> Directive? {
        for s in verdicts.keys.sorted() where verdicts[s]!.due <= now {
            let cause = verdicts.removeValue(forKey: s)!.cause
            guard !done[s] else { continue }
            if failures[s, default: 0] >= policy.maxFailures {
                finished = true
                return .poison(shard: s, failures: failures[s]!, cause: cause)
            }
            queue.insert(s, at: 0)
        }
        return nil
    }

    /// A worker declared dead is alive after all (its connection was heard again, or the same
    /// process joined anew): it was cut off or stalled, not crashed, so the shard it was charged
    /// with is uncharged. At most `maxFailures` charges of a shard are withdrawn. A held shard
    /// that falls below `maxFailures` goes back to the queue at once.
    public mutating func forgive(_ worker: PeerID, now: Double) -> [Directive] {
        guard let s = charges.removeValue(forKey: worker), !done[s], let n = failures[s], n > 0,
            forgiven[s, default: 0] < policy.maxFailures
        else { return [] }
        failures[s] = n - 1
        forgiven[s, default: 0] += 1
        guard verdicts[s] != nil, n - 1 < policy.maxFailures else { return [] }
        verdicts[s] = nil
        queue.insert(s, at: 0)
        return dispatch(now: now)
    }

    /// The shard a dead worker was charged with, until the charge is withdrawn.
    public func charge(of worker: PeerID) -> Int? { charges[worker] }

    /// Shards held out of the queue until their verdict.
    public var heldForVerdict: [Int] { verdicts.keys.sorted() }

    /// Charges withdrawn from a shard so far.
    public func forgivenCount(_ shard: Int) -> Int { forgiven[shard] ?? 0 }

    /// How many attempts of a shard have failed.
    public func failureCount(_ shard: Int) -> Int { failures[shard] ?? 0 }
}
