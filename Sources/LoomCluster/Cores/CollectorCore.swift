import Logging
import LoomProduct

/// The collector's decisions, free of sockets, files and clocks: events in, directives out.
///
/// It decides which job it serves and whose messages count, which shards to write (each once),
/// when written shards are made durable and acknowledged, and when the result may be published.
/// ``Collector`` is the shell: it claims the folder, writes rows, syncs the journal and publishes
/// the manifest when told, and reports back. Time is passed in with each event.
public struct CollectorCore: Sendable {
    public struct Settings: Sendable, Equatable {
        /// Seconds a written shard may wait to be made durable and acknowledged. A crash loses at
        /// most this much work, which is computed again; each commit costs an fdatasync per
        /// result file and an fsync of the journal.
        public var commitInterval = 0.05
        /// Shards written that are committed at once, however recent.
        public var commitBatch = 1024
        public init() {}
    }

    public enum Event: Sendable {
        /// The coordinator asks for a job (`collect`), decoded by the shell; `verify`: report copies;
        /// `loomVersion`: the coordinator's.
        case collect(PeerID, jobId: String, shardCount: Int, verify: Bool = false, loomVersion: String = LoomVersion.string)
        /// The shell claimed the folder; its journal holds these shards.
        case claimed(resumed: [Int])
        case claimFailed(String)
        /// A `result` message from a worker: its shards, in order, and (when verifying) each one's
        /// digest (``ResultWriter/digest(rows:job:)`` of its bytes; empty for a shard not in the job).
        case result(PeerID, jobId: String, worker: String = "", shards: [Int], digests: [[UInt8]] = [])
        /// The coordinator condemns these shards (`redo`): forget them and take nothing more from `quarantined`.
        case redo(PeerID, jobId: String, shards: [Int], quarantined: [String])
        /// The shell wrote these shards of the last `.write`; `refused`: the rest did not fit the job.
        case written([Int], refused: String?, from: PeerID, bytes: Int = 0)
        case finish(PeerID, WireMessage.Finish)
        case published
        case publishFailed(String)
        case heartbeat(PeerID)
        case end(PeerID, ok: Bool, reason: String)
        /// A message the collector does not take (wrong role, malformed), with why.
        case refused(PeerID, String)
        case tick
    }

    public enum Directive: Equatable, Sendable {
        case send(WireMessage, to: PeerID)
        /// Claim the out folder for the job just asked for; report `.claimed` or `.claimFailed`.
        case claim
        /// Write these shards of the result message in hand (the others are duplicates or not the
        /// job's); report `.written`.
        case write([Int])
        /// Make these written shards durable: sync the rows, then journal them (ack follows).
        case commit([Int])
        /// Forget these journaled shards, durably: their rows are to be written again.
        case revoke([Int])
        /// Publish the manifest; report `.published` or `.publishFailed`.
        case publish(WireMessage.Finish)
        case log(Logger.Level, String, Logger.Metadata = [:])
        /// Stop serving: `nil` after publishing or a clean end, else the failure.
        case exit(failure: String?)
    }

    struct Job: Sendable {
        let id: String
        var coordinator: PeerID
        var written: [Bool]
        var journaled: [Bool]
        var count = 0
        var duplicates = 0
        /// Message bytes of the results that were written.
        var resultBytes = 0
        /// Report every copy to the coordinator (`--verify`).
        var verify = false
    }

    public let settings: Settings
    private var job: Job? = nil
    /// A `collect` waiting for the shell's claim.
    private var claiming: (peer: PeerID, id: String, shards: Int, verify: Bool)? = nil
    /// The peer that last asked for a job: before one is claimed, only it may end this collector.
    private var asker: PeerID? = nil
    private var pending: [Int] = []
    /// When verifying: the worker and digest of each written shard not yet reported (at its commit).
    private var firstCopies: [Int: (worker: String, digest: [UInt8])] = [:]
    /// The worker and digests of the result in hand, between `.result` and `.written`.
    private var inHand: (worker: String, digests: [Int: [UInt8]])? = nil
    /// Workers the coordinator quarantined: their results are refused.
    private var quarantined: Set<String> = []
    private var oldestPending = 0.0
    /// Messages dropped because they were malformed, not the job's, or from a role that may not send them.
    public private(set) var refusedMessages = 0
    public private(set) var finished = false

    public init(settings: Settings = Settings()) { self.settings = settings }

    /// The job's coordinator, once claimed.
    public var coordinator: PeerID? { job?.coordinator }
    /// Whether the coordinator asked for every copy to be reported (`--verify`): the shell then
    /// passes each result's digests.
    public var isVerifying: Bool { job?.verify ?? false }
    /// The job's id, once claimed.
    public var jobId: String? { job?.id }
    /// Shards written so far (this run and resumed), and duplicates dropped.
    public var writtenCount: Int { job?.count ?? 0 }
    public var duplicates: Int { job?.duplicates ?? 0 }
    /// Message bytes of the results written this run.
    public var resultBytes: Int { job?.resultBytes ?? 0 }
    /// Whether a shard is in the journal.
    public func isJournaled(_ shard: Int) -> Bool { job.map { shard >= 0 && shard < $0.journaled.count && $0.journaled[shard] } ?? false }

    /// Seconds until the next commit is due (nil: nothing pending).
    public func untilCommit(now: Double) -> Double? {
        pending.isEmpty ? nil : max(0, settings.commitInterval - (now - oldestPending))
    }

    public mutating func handle(_ event: Event, now: Double) -> [Directive] {
        guard !finished else { return [] }
        var out: [Directive] = []
        switch event {
        case .collect(let peer, let id, let shards, let verify, let version):
            guard version == LoomVersion.string else {
                let text = "the collector runs Loom \(LoomVersion.string); the coordinator runs Loom \(version): run the same Loom version everywhere"
                out.append(.send(.error(jobId: id, shard: nil, message: text), to: peer))
                return refuse(peer, text, &out)
            }
            if job == nil || job?.id == id { asker = peer }
            if job?.id == id { job?.verify = verify }
            if var job {
                // The coordinator asks again (it lost us, or our answer, or it was restarted and
                // connects anew): same job, same answer, and acks go to whoever asked last.
                if job.id == id {
                    job.coordinator = peer
                    self.job = job
                    out.append(.send(.collectorReady(jobId: id, resumed: job.journaled.indices.filter { job.journaled[$0] }), to: peer))
                } else {
                    refuse(peer, "asked for job \(id.prefix(12)) while collecting \(job.id.prefix(12))", &out)
                }
            } else if claiming == nil {
                claiming = (peer, id, shards, verify)
                out.append(.claim)
            }
        case .claimed(let resumed):
            guard let c = claiming else { return out }
            claiming = nil
            var j = Job(
                id: c.id, coordinator: c.peer, written: .init(repeating: false, count: c.shards),
                journaled: .init(repeating: false, count: c.shards), verify: c.verify)
            var valid: [Int] = []
            for s in resumed where s >= 0 && s < c.shards && !j.written[s] {
                j.written[s] = true
                j.journaled[s] = true
                j.count += 1
                valid.append(s)
            }
            job = j
            if !valid.isEmpty { out.append(.log(.notice, "resuming", ["complete": "\(valid.count)", "of": "\(c.shards)"])) }
            out.append(.log(.info, "collecting", ["job": "\(c.id.prefix(12))"]))
            out.append(.send(.collectorReady(jobId: c.id, resumed: valid), to: c.peer))
        case .claimFailed(let text):
            guard let c = claiming else { return out }
            out.append(.send(.error(jobId: c.id, shard: nil, message: "collector: \(text)"), to: c.peer))
            finished = true
            out.append(.exit(failure: text))
        case .result(let peer, let id, let worker, let shards, let digests):
            guard var j = job, id == j.id else { return refuse(peer, "a result for another job", &out) }
            guard !quarantined.contains(worker) else { return refuse(peer, "a result from \(worker), which is quarantined", &out) }
            guard !j.verify || digests.count == shards.count else { return refuse(peer, "a result without its digests", &out) }
            var fresh: [Int] = []
            var again: [Int] = []
            var copies: [WireMessage.Copy] = []
            for (k, s) in shards.enumerated() {
                guard s < j.written.count else { return refuse(peer, "shard \(s) is not in the job (\(j.written.count) shards)", &out) }
                if j.written[s] || fresh.contains(s) {
                    // A duplicate (a re-issued, speculative or verification copy): write nothing;
                    // acknowledge again once durable; when verifying, report it.
                    j.duplicates += 1
                    if j.journaled[s] { again.append(s) }
                    if j.verify { copies.append(.init(shard: s, worker: worker, digest: digests[k], written: false)) }
                } else {
                    fresh.append(s)
                }
            }
            job = j
            if !copies.isEmpty { out.append(.send(.copies(jobId: j.id, copies: copies), to: j.coordinator)) }
            if !again.isEmpty {
                out.append(.send(.ack(jobId: j.id, shards: again, totals: .init(duplicates: j.duplicates, resultBytes: j.resultBytes)), to: j.coordinator))
            }
            if !fresh.isEmpty {
                if j.verify { inHand = (worker, Dictionary(zip(shards, digests)) { a, _ in a }) }
                out.append(.write(fresh))
            }
        case .redo(let peer, let id, let shards, let names):
            guard var j = job, peer == j.coordinator, id == j.id else {
                return refuse(peer, "redo from a peer that is not this job's coordinator", &out)
            }
            quarantined.formUnion(names)
            var revoked: [Int] = []
            let condemned = Set(shards.filter { $0 >= 0 && $0 < j.written.count })
            for s in condemned.sorted() where j.written[s] {
                j.written[s] = false
                j.count -= 1
                if j.journaled[s] {
                    j.journaled[s] = false
                    revoked.append(s)
                }
                firstCopies[s] = nil
            }
            pending.removeAll { condemned.contains($0) }
            job = j
            if !revoked.isEmpty { out.append(.revoke(revoked)) }
            out.append(.log(.notice, "forgetting shards written by a quarantined worker", ["shards": "\(condemned.count)", "workers": "\(names)"]))
            out.append(.send(.redone(jobId: j.id, shards: shards), to: j.coordinator))
        case .written(let shards, let refused, let peer, let bytes):
            guard var j = job else { return out }
            if !shards.isEmpty { j.resultBytes += bytes }
            for s in shards where s >= 0 && s < j.written.count && !j.written[s] {
                j.written[s] = true
                j.count += 1
                if pending.isEmpty { oldestPending = now }
                pending.append(s)
                if let hand = inHand, let digest = hand.digests[s] { firstCopies[s] = (hand.worker, digest) }
            }
            inHand = nil
            job = j
            if let refused { refuse(peer, refused, &out) }
            commitIfDue(now: now, &out)
        case .finish(let peer, let f):
            guard let j = job, peer == j.coordinator, f.jobId == j.id else {
                return refuse(peer, "finish from a peer that is not this job's coordinator", &out)
            }
            commit(&out)
            guard j.count == j.written.count else {
                let text = "told to finish with \(j.count) of \(j.written.count) shards written"
                out.append(.send(.finished(ok: false, message: text), to: j.coordinator))
                finished = true
                out.append(.exit(failure: text))
                return out
            }
            out.append(.publish(f))
        case .published:
            guard let j = job else { return out }
            out.append(.send(.finished(ok: true, message: ""), to: j.coordinator))
            out.append(.log(.info, "published"))
            finished = true
            out.append(.exit(failure: nil))
        case .publishFailed(let text):
            guard let j = job else { return out }
            out.append(.send(.finished(ok: false, message: text), to: j.coordinator))
            finished = true
            out.append(.exit(failure: text))
        case .heartbeat(let peer):
            // The reply names the job this collector holds: a restarted collector holds none.
            out.append(.send(.heartbeat(job: job?.id ?? ""), to: peer))
        case .end(let peer, let ok, let reason):
            // Only the coordinator of the job may end it; before a job, the one that asked for it
            // (a coordinator that failed while loading). A stray `end` from anyone else is refused.
            guard let coordinator = job?.coordinator ?? asker, peer == coordinator else {
                return refuse(peer, "end from a peer that is not this job's coordinator", &out)
            }
            finished = true
            out.append(.exit(failure: ok ? nil : "the coordinator ended the job: \(reason)"))
        case .refused(let peer, let why):
            refuse(peer, why, &out)
        case .tick:
            commitIfDue(now: now, &out)
        }
        return out
    }

    /// Commits in groups: at most `commitInterval` late, or `commitBatch` shards at a time, and at once when the last shard is in.
    private mutating func commitIfDue(now: Double, _ out: inout [Directive]) {
        guard let j = job, !pending.isEmpty else { return }
        if pending.count >= settings.commitBatch || j.count == j.written.count || now - oldestPending >= settings.commitInterval {
            commit(&out)
        }
    }

    private mutating func commit(_ out: inout [Directive]) {
        guard var j = job, !pending.isEmpty else { return }
        out.append(.commit(pending))
        for s in pending { j.journaled[s] = true }
        if j.verify {
            let copies = pending.compactMap { s in
                firstCopies.removeValue(forKey: s).map { WireMessage.Copy(shard: s, worker: $0.worker, digest: $0.digest, written: true) }
            }
            if !copies.isEmpty { out.append(.send(.copies(jobId: j.id, copies: copies), to: j.coordinator)) }
        }
        out.append(.send(.ack(jobId: j.id, shards: pending, totals: .init(duplicates: j.duplicates, resultBytes: j.resultBytes)), to: j.coordinator))
        job = j
        pending.removeAll(keepingCapacity: true)
    }

    @discardableResult
    private mutating func refuse(_ peer: PeerID, _ why: String, _ out: inout [Directive]) -> [Directive] {
        refusedMessages += 1
        out.append(.log(.warning, "refused a message", ["from": "\(peer)", "why": "\(why)"]))
        return out
    }
}
