import LoomProduct

/// Verification by recomputation (`--verify FRACTION`): which shards are computed again, on whom,
/// and what a disagreement decides. Part of ``CoordinatorCore``; free of sockets and clocks.
///
/// Loom's results are bitwise reproducible, so two workers that compute a shard send the same
/// bytes. A fraction of the shards, chosen by a hash of the job id and the shard number (the same
/// choice on every run of the job), is computed a second time on a worker other than the one whose
/// copy was written, and the collector reports each copy's digest (`copies`). If the two differ, a
/// third worker decides. The worker whose bytes lose is quarantined, and every shard whose written
/// copy came from it is computed again. Three different answers fail the job: the model does not
/// give the same bits on these workers.
///
/// A worker here is one worker process (its `hello` name), not a key: the workers of an array may
/// share a key.
public struct Verification: Sendable {
    /// What the manifest records (fraction, shards verified, mismatches, unverified, quarantined workers).
    public typealias Summary = Manifest.VerificationRecord

    /// What a reported copy decides.
    public enum Decision: Equatable, Sendable {
        /// `worker` lost the vote on `shard`: quarantine it, and compute again every shard of `redo`
        /// (those whose written copy it sent).
        case quarantine(worker: String, shard: Int, redo: [Int])
        /// Three workers gave three different answers for `shard`.
        case irreconcilable(shard: Int, workers: [String])
        /// The written copy of `shard` came from a worker already quarantined (it arrived after the
        /// vote): compute it again.
        case condemn(shard: Int, worker: String)
    }

    struct Check: Sendable {
        /// The copies so far: the written one first.
        var copies: [(worker: String, digest: [UInt8])]
        /// The worker computing the next copy, and since when.
        var assigned: (peer: PeerID, worker: String, at: Double)? = nil
        var attempts = 0
        /// Whether it waits in `queue` for a worker.
        var queued = true
    }

    /// Attempts at one copy (a worker lost, a copy that never came) after which a check is given up.
    public static let maxAttempts = 3
    /// Queued checks looked at for one worker: past them, it gets ordinary shards.
    static let scanLimit = 64

    public let fraction: Double
    private let seed: UInt64
    /// The worker whose copy was written, per shard: an index into `names`, or -1.
    private var writers: [Int32]
    private var names: [String] = []
    private var nameIndex: [String: Int32] = [:]
    private var checks: [Int: Check] = [:]
    /// Shards whose check waits for a worker, oldest first (stale entries are skipped).
    private var queue: [Int] = []
    private var head = 0
    public private(set) var verified = 0
    public private(set) var mismatches = 0
    public private(set) var unverified = 0
    public private(set) var quarantined: [String] = []

    /// Verification of `fraction` (0 ... 1) of the `shardCount` shards of job `jobId`.
    public init(fraction: Double, jobId: String, shardCount: Int) {
        self.fraction = min(max(fraction, 0), 1)
        var h: UInt64 = 0xcbf2_9ce4_8422_2325 // FNV-1a of the job id
        for b in jobId.utf8 { h = (h ^ UInt64(b)) &* 0x0100_0000_01b3 }
        seed = h
        writers = fraction > 0 ? [Int32](repeating: -1, count: shardCount) : []
    }

    /// Whether `--verify` is on.
    public var isOn: Bool { fraction > 0 }

    /// Whether no check is waiting or running.
    public var isSettled: Bool { checks.isEmpty }

    /// Whether a check may be waiting for a worker (the queue's stale entries are dropped as
    /// ``nextCheck(for:worker:now:)`` reaches them): O(1), for every `copies` message and tick.
    public var mayHaveQueued: Bool { !checks.isEmpty && head < queue.count }

    public var summary: Summary {
        Summary(fraction: fraction, verified: verified, mismatches: mismatches, unverified: unverified, quarantined: quarantined)
    }

    /// Whether the shard is one of the fraction computed twice: a hash of the job and the shard.
    public func isSelected(_ shard: Int) -> Bool {
        guard fraction > 0 else { return false }
        if fraction >= 1 { return true }
        var z = seed &+ UInt64(truncatingIfNeeded: shard) &* 0x9e37_79b9_7f4a_7c15 // splitmix64
        z = (z ^ (z >> 30)) &* 0xbf58_476d_1ce4_e5b9
        z = (z ^ (z >> 27)) &* 0x94d0_49bb_1331_11eb
        z ^= z >> 31
        return Double(z >> 11) / Double(1 << 53) < fraction
    }

    public func isQuarantined(_ worker: String) -> Bool { quarantined.contains(worker) }

    /// The collector reports a copy of a shard.
    public mutating func copy(_ c: WireMessage.Copy) -> Decision? {
        guard isOn, c.shard >= 0, c.shard < writers.count else { return nil }
        if c.written {
            if isQuarantined(c.worker) { return .condemn(shard: c.shard, worker: c.worker) }
            writers[c.shard] = index(of: c.worker)
            if isSelected(c.shard) && checks[c.shard] == nil && !isQuarantined(c.worker) {
                checks[c.shard] = Check(copies: [(c.worker, c.digest)])
                queue.append(c.shard)
            }
            return nil
        }
        // A later copy counts only from the worker it was asked of (else it is a speculative duplicate).
        guard var check = checks[c.shard], let a = check.assigned, a.worker == c.worker else { return nil }
        check.assigned = nil
        check.copies.append((c.worker, c.digest))
        let copies = check.copies
        if copies.count == 2 {
            if copies[1].digest == copies[0].digest {
                verified += 1
                checks[c.shard] = nil
            } else {
                mismatches += 1
                check.queued = true
                check.attempts = 0
                checks[c.shard] = check
                queue.append(c.shard)
            }
            return nil
        }
        checks[c.shard] = nil
        if copies[2].digest == copies[0].digest {
            verified += 1
            return quarantine(copies[1].worker, shard: c.shard)
        }
        if copies[2].digest == copies[1].digest { return quarantine(copies[0].worker, shard: c.shard) }
        return .irreconcilable(shard: c.shard, workers: copies.map(\.worker))
    }

    /// The next check a worker may compute: one whose copies it has not sent. Nil if none.
    public mutating func nextCheck(for peer: PeerID, worker: String, now: Double) -> Int? {
        guard !checks.isEmpty, !isQuarantined(worker) else { return nil }
        var looked = 0
        var i = head
        while i < queue.count && looked < Self.scanLimit {
            let s = queue[i]
            guard var check = checks[s], check.queued else {
                if i == head { head += 1 }
                i += 1
                continue
            }
            looked += 1
            if !check.copies.contains(where: { $0.worker == worker }) {
                check.queued = false
                check.assigned = (peer, worker, now)
                checks[s] = check
                if i == head { head += 1 }
                compact()
                return s
            }
            i += 1
        }
        return nil
    }

    /// When the oldest check still assigned to a worker's connection was given (nil: none).
    public func checkSince(_ peer: PeerID) -> Double? {
        checks.values.compactMap { $0.assigned?.peer == peer ? $0.assigned!.at : nil }.min()
    }

    /// A worker's connection is gone: its checks wait for another worker.
    public mutating func lost(_ peer: PeerID) {
        for (s, var check) in checks where check.assigned?.peer == peer {
            check.assigned = nil
            check.attempts += 1
            requeue(s, check)
        }
    }

    /// Checks assigned more than `timeout` seconds ago go back to the queue. Returns the shards of
    /// mismatches that ran out of attempts to find a third copy: they cannot be decided.
    public mutating func expire(now: Double, timeout: Double) -> [Int] {
        for (s, var check) in checks {
            guard let a = check.assigned, now - a.at > timeout else { continue }
            check.assigned = nil
            check.attempts += 1
            requeue(s, check)
        }
        return giveUp { $0.attempts >= Self.maxAttempts }
    }

    /// Shards to be computed again (a quarantined worker's): their checks are dropped, and their
    /// new written copies are checked anew.
    public mutating func reopened(_ shards: [Int]) {
        for s in shards {
            checks[s] = nil
            if s >= 0 && s < writers.count { writers[s] = -1 }
        }
    }

    /// The job is otherwise done: checks that no connected worker may compute are given up.
    /// Returns the shards of mismatches left without a third worker to decide them.
    public mutating func abandon(connected: Set<String>) -> [Int] {
        let out = Set(quarantined)
        return giveUp { check in
            check.queued && !connected.contains { w in !out.contains(w) && !check.copies.contains { $0.worker == w } }
        }
    }

    // MARK: - Private

    private mutating func index(of worker: String) -> Int32 {
        if let i = nameIndex[worker] { return i }
        let i = Int32(names.count)
        names.append(worker)
        nameIndex[worker] = i
        return i
    }

    private mutating func requeue(_ s: Int, _ check: Check) {
        var check = check
        if !check.queued { queue.append(s) }
        check.queued = true
        checks[s] = check
    }

    /// Drops the checks that match: a single copy counts as unverified; a mismatch is returned.
    private mutating func giveUp(where condition: (Check) -> Bool) -> [Int] {
        var undecided: [Int] = []
        for (s, check) in checks where check.assigned == nil && condition(check) {
            if check.copies.count >= 2 {
                undecided.append(s)
            } else {
                unverified += 1
            }
            checks[s] = nil
        }
        return undecided.sorted()
    }

    private mutating func quarantine(_ worker: String, shard: Int) -> Decision {
        if !quarantined.contains(worker) { quarantined.append(worker) }
        let i = nameIndex[worker] ?? -2
        let redo = writers.indices.filter { writers[$0] == i }
        for (s, var check) in checks {
            if check.copies[0].worker == worker {
                // Its written copy is condemned anyway: computed again, then checked anew.
                checks[s] = nil
            } else if check.copies.count == 2 && check.copies[1].worker == worker {
                // A mismatch it caused: the written copy stands.
                verified += 1
                checks[s] = nil
            } else if check.assigned?.worker == worker {
                check.assigned = nil
                requeue(s, check)
            }
        }
        return .quarantine(worker: worker, shard: shard, redo: redo)
    }

    private mutating func compact() {
        if head >= 1024 && head * 2 >= queue.count {
            queue.removeFirst(head)
            head = 0
        }
    }
}
