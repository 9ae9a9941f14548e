import Logging
import LoomProduct

/// The coordinator's decisions, free of sockets, clocks and logs: events in, directives out.
///
/// It decides who is a worker and who is lost, when to send the job and the model, which shards
/// go where (through its ``Scheduler``), when the collector is lost or restarted, and when the
/// job is done or failed. ``Coordinator`` is the shell around it: it turns messages and the
/// clock into ``Event``s and carries out the ``Directive``s; the simulation (`LoomSimulation`)
/// drives the same core through a seeded, simulated cluster.
///
/// Time is a number of seconds passed in with each event.
public struct CoordinatorCore: Sendable {
    /// The coordinator's settings, with `loom coordinator`'s defaults.
    public struct Settings: Sendable, Equatable {
        /// Seconds between heartbeats, both ways.
        public var heartbeat: Double = 1
        /// Missed heartbeats after which a worker (or the collector) is declared lost.
        public var liveness: Int = 3
        /// Leases, poison shards, speculation.
        public var policy = Scheduler.Policy()
        /// Seconds the whole job may take; nil: no bound.
        public var deadline: Double? = nil
        /// The most credit one `ready` may grant.
        public var maxGrant = 256
        /// The most times one worker connection is sent the model (a worker asks once per job).
        public var maxModelSends = 3
        /// A worker that says hello again this long after its job was sent lost it: send it again.
        public var jobResend: Double = 1.5
        /// Seconds between two `rejoin`s to the same lost connection.
        public var rejoinInterval: Double = 1
        /// Seconds between two "no workers connected" warnings.
        public var noWorkersWarning: Double = 10
        /// The fraction of shards computed again on another worker and compared (`--verify`).
        public var verify: Double = 0

        public init() {}

        /// Seconds of silence after which a peer is lost.
        public var silence: Double { heartbeat * Double(liveness) }
    }

    public enum Event: Sendable {
        /// A decoded message from a worker's connection.
        case worker(PeerID, WireMessage)
        /// A message from a worker's connection that could not be decoded.
        case malformed(PeerID, reason: String)
        /// A message in another version of the protocol (the reason names both).
        case wrongVersion(PeerID, reason: String)
        /// A decoded message from the collector.
        case collector(WireMessage)
        /// Shards the shell could not send to a worker (its connection is gone).
        case undelivered(PeerID, shards: [Int])
        /// Time passes (at least every 200 ms).
        case tick
        /// Something outside the core ends the job: a signal, a failed collector thread.
        case fail(String)
    }

    public enum Directive: Equatable, Sendable {
        /// Send this message to a worker, without blocking.
        case send(WireMessage, to: PeerID)
        /// Send the job (descriptor, collector endpoint, args) to a worker.
        case sendJob(to: PeerID)
        /// Send the model's files to a worker.
        case sendModel(to: PeerID)
        /// Send these shards with their X rows to a worker, in one message. If it cannot be
        /// sent, report `.undelivered`.
        case sendShards([Int], to: PeerID)
        /// Send this message to the collector, without blocking.
        case toCollector(WireMessage)
        /// Send the collector the job (`collect`, with the descriptor), without blocking.
        case collect
        /// Tell the collector to publish; the shell fills in `bytesToWorkers`.
        case finish(WireMessage.Finish)
        case log(Logger.Level, String, Logger.Metadata = [:])
        /// The job is over: stop after the sends above.
        case exit(Outcome)
    }

    public enum Outcome: Equatable, Sendable {
        case done(workers: Int)
        case failed(String)
    }

    enum CollectorState: Equatable {
        /// Not yet ready: `collect` is sent every heartbeat.
        case claiming
        case ready
        /// Silent or restarted: shards are paused until it is ready again.
        case lost
    }

    public let jobId: String
    public let modelSha256: String
    public let plan: ShardPlan
    public let settings: Settings
    /// The collector's endpoint, as the logs name it.
    let collectorName: String
    public internal(set) var scheduler: Scheduler
    /// `--verify`: checks, votes and quarantines.
    public internal(set) var verification: Verification
    /// Every shard is acknowledged; the finish waits for verification to settle.
    var finishHeld = false
    /// Shards the collector was told to forget (a quarantined worker's), until it says it has.
    var redoPending: Set<Int> = []
    var lastRedo = -Double.infinity
    /// Connected workers by connection, with their names, when they were sent the job, and how often the model.
    var names: [PeerID: String] = [:]
    private var jobSent: [PeerID: Double] = [:]
    private var modelSends: [PeerID: Int] = [:]
    /// Joined before the collector was ready: sent the job once it is.
    private var waiting: [PeerID] = []
    /// Connections declared lost, and when each was last told to rejoin.
    private var buried: [PeerID: Double] = [:]
    public private(set) var everJoined: Set<PeerID> = []
    private var collector = CollectorState.claiming
    private var collectorSeen = 0.0
    private var lastCollect = -Double.infinity
    private var lastHeartbeat = -Double.infinity
    private var lastNoWorkers = 0.0
    private var lastCollectorWarning = 0.0
    /// Heartbeat rounds so far (one every `heartbeat` seconds: every worker pinged, leases checked).
    public private(set) var heartbeatRounds = 0
    /// Shards the collector's journal held when the job started (a resumed job).
    public private(set) var resumedShards = 0
    /// The collector's figures, as its last `ack` gave them.
    public private(set) var collectorTotals = WireMessage.CollectorTotals()
    /// Examples in acknowledged shards.
    public internal(set) var examplesDone = 0
    public private(set) var outcome: Outcome? = nil

    public init(jobId: String, modelSha256: String, plan: ShardPlan, settings: Settings = Settings(), collectorName: String) {
        self.jobId = jobId
        self.modelSha256 = modelSha256
        self.plan = plan
        self.settings = settings
        self.collectorName = collectorName
        scheduler = Scheduler(shardCount: plan.shardCount, policy: settings.policy)
        scheduler.paused = true
        verification = Verification(fraction: settings.verify, jobId: jobId, shardCount: plan.shardCount)
    }

    /// The connected workers.
    public var workerCount: Int { names.count }

    /// The first directives: ask the collector to take the job.
    public mutating func start(now: Double) -> [Directive] {
        lastCollect = now
        collectorSeen = now
        return [.collect]
    }

    /// Handles one event at time `now`.
    public mutating func handle(_ event: Event, now: Double) -> [Directive] {
        var out: [Directive] = []
        if outcome != nil {
            // Over: a worker that says hello now is told so rather than left waiting for a job.
            if case .worker(let w, .hello) = event, case .done = outcome, names[w] == nil {
                out.append(.send(.end(ok: true, reason: "done"), to: w))
            }
            return out
        }
        switch event {
        case .worker(let w, let m): fromWorker(w, m, now: now, &out)
        case .malformed(let w, let reason):
            out.append(.log(.warning, "dropped a malformed message", ["from": "\(names[w] ?? "\(w)")", "why": "\(reason)"]))
            if names[w] != nil { bury(w, why: "it sent a malformed message", now: now, &out) }
        case .wrongVersion(let w, let reason):
            out.append(.log(.warning, "refused a peer of another Loom version", ["why": "\(reason)"]))
            out.append(.send(.end(ok: false, reason: reason), to: w))
        case .collector(let m): fromCollector(m, now: now, &out)
        case .undelivered(let w, let shards):
            scheduler.undelivered(w, shards)
            bury(w, why: "its connection is gone", now: now, &out)
        case .tick: tick(now: now, &out)
        case .fail(let reason): fail(reason, &out)
        }
        return out
    }

    // MARK: - Workers

    private mutating func fromWorker(_ w: PeerID, _ m: WireMessage, now: Double, _ out: inout [Directive]) {
        guard names[w] != nil || m.type == .hello else {
            // A connection declared lost is heard from again (the worker was stalled, or cut off by a
            // partition, or these are its last words arriving late). Its shards have gone to others:
            // tell it to start over on a new connection, at most once a second, rather than take its
            // reports for shards it no longer holds.
            if now - (buried[w] ?? -.infinity) >= settings.rejoinInterval {
                if buried[w] == -.infinity { out.append(.log(.notice, "a worker declared lost is back; told to join again", ["worker": "\(w)"])) }
                buried[w] = now
                out.append(.send(.rejoin, to: w))
            }
            return
        }
        if names[w] != nil { scheduler.heard(w, now: now) }
        switch m {
        case .hello(let h):
            if names[w] != nil {
                // A repeated hello. A worker says hello every second until it has a job, so one that
                // waited for this coordinator has several queued, which arrive together: answer the
                // first only (each job sent restarts the worker's compute thread). One that says hello
                // again well after its job was sent has lost it (or our answer): send it again.
                if collector == .ready, !waiting.contains(w), now - (jobSent[w] ?? -.infinity) >= settings.jobResend { sendJob(w, now: now, &out) }
                return
            }
            if h.loomVersion != LoomVersion.string {
                let reason =
                    "worker \(h.worker) runs Loom \(h.loomVersion); this coordinator runs Loom \(LoomVersion.string): run the same Loom version everywhere"
                out.append(.log(.warning, "refused a worker of another Loom version", ["why": "\(reason)"]))
                out.append(.send(.end(ok: false, reason: reason), to: w))
                return
            }
            if verification.isQuarantined(h.worker) {
                out.append(.send(.end(ok: false, reason: "this worker is quarantined: its results differed from two other workers'"), to: w))
                return
            }
            names[w] = h.worker
            buried[w] = nil
            everJoined.insert(w)
            scheduler.join(w)
            scheduler.heard(w, now: now)
            out.append(.log(.info, "worker joined", ["worker": "\(h.worker)"]))
            if collector == .ready { sendJob(w, now: now, &out) } else { waiting.append(w) }
        case .needModel(let sha):
            guard sha == modelSha256 else { return }
            modelSends[w, default: 0] += 1
            guard modelSends[w]! <= settings.maxModelSends else {
                bury(w, why: "it asked for the model \(modelSends[w]!) times", now: now, &out)
                return
            }
            out.append(.sendModel(to: w))
        case .ready(let id, let credit, let computed):
            guard id == jobId else { return }
            scheduler.computed(w, computed, now: now)
            var amount = min(credit, settings.maxGrant)
            // Verification copies first: they are few, and the job's end waits for them.
            if verification.isOn, let name = names[w] {
                while amount > 0, let s = verification.nextCheck(for: w, worker: name, now: now) {
                    out.append(.sendShards([s], to: w))
                    amount -= 1
                }
            }
            apply(scheduler.grant(w, amount, now: now), now: now, &out)
        case .error(let id, let shard, let text):
            guard id == jobId else { return }
            if let shard, shard < plan.shardCount {
                fail("worker \(names[w] ?? "\(w)") failed on \(plan.describe(shard)): \(text)", &out)
            } else {
                fail(text, &out)
            }
        case .heartbeat:
            break
        default:
            out.append(.log(.warning, "a worker sent a message only other roles send", ["type": "\(m.type)", "worker": "\(names[w] ?? "\(w)")"]))
            bury(w, why: "it sent \(m.type), which workers never send", now: now, &out)
        }
    }

    private mutating func sendJob(_ w: PeerID, now: Double, _ out: inout [Directive]) {
        jobSent[w] = now
        out.append(.sendJob(to: w))
    }

    /// Declares a worker lost: its shards go to others. `dead`: it failed (its running shard is
    /// charged with a failed attempt); a quarantined worker is sent away, not failed.
    mutating func bury(_ w: PeerID, why: String, now: Double, dead: Bool = true, _ out: inout [Directive]) {
        guard let name = names.removeValue(forKey: w) else { return }
        jobSent[w] = nil
        modelSends[w] = nil
        waiting.removeAll { $0 == w }
        buried[w] = -.infinity
        let checking = verification.checkSince(w)
        verification.lost(w)
        out.append(.log(.warning, "worker lost", ["worker": "\(name)", "why": "\(why)"]))
        apply(scheduler.leave(w, now: now, dead: dead, busySince: checking), now: now, &out)
    }

    // MARK: - The collector

    private mutating func fromCollector(_ m: WireMessage, now: Double, _ out: inout [Directive]) {
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

    private mutating func acknowledge(_ shards: [Int], now: Double, _ out: inout [Directive]) {
        let before = scheduler.completed
        var examples = 0
        for s in shards where s >= 0 && s < plan.shardCount && !scheduler.isDone(s) { examples += plan.range(of: s).count }
        apply(scheduler.acknowledge(shards, now: now), now: now, &out)
        if scheduler.completed > before { examplesDone += examples }
    }

    private mutating func loseCollector(now: Double, _ out: inout [Directive]) {
        collector = .lost
        scheduler.paused = true
        apply(scheduler.collectorLost(now: now), now: now, &out)
    }

    // MARK: - Time

    private mutating func tick(now: Double, _ out: inout [Directive]) {
        if let deadline = settings.deadline, now > deadline {
            return fail(
                "the job did not finish within --deadline \(Int(deadline)) s (\(scheduler.completed) of \(scheduler.shardCount) shards done, \(names.count) workers)",
                &out)
        }
        guard now - lastHeartbeat >= settings.heartbeat else { return }
        lastHeartbeat = now
        heartbeatRounds += 1
        for w in scheduler.workers where names[w] != nil {
            if let seen = scheduler.lastHeard(w), now - seen > settings.silence {
                bury(w, why: "silent for \(Self.seconds(now - seen)) s", now: now, &out)
            } else {
                out.append(.send(.heartbeat(job: ""), to: w))
            }
        }
        apply(scheduler.tick(now: now), now: now, &out)
        if verification.isOn {
            verificationTick(now: now, &out)
            if outcome != nil { return }
        }
        // The collector: heartbeats both ways; if it goes silent, send the job again until a
        // (restarted) collector takes it up again from its journal.
        out.append(.toCollector(.heartbeat(job: "")))
        if collector == .ready && now - collectorSeen > settings.silence {
            out.append(.log(.warning, "collector lost; re-queueing the shards in flight and waiting for it", ["endpoint": "\(collectorName)"]))
            loseCollector(now: now, &out)
        }
        if collector != .ready && now - lastCollect >= settings.heartbeat {
            lastCollect = now
            out.append(.collect)
        }
        if collector != .ready && now - collectorSeen >= settings.noWorkersWarning && now - lastCollectorWarning >= settings.noWorkersWarning {
            // Not a silent wait: say so, naming the endpoint, every 10 s.
            lastCollectorWarning = now
            out.append(
                .log(
                    .warning, "the collector has not answered for \(Int(now - collectorSeen)) s; waiting for it (is it running, and reachable from here?)",
                    ["endpoint": "\(collectorName)"]))
        }
        if names.isEmpty && collector == .ready && now - lastNoWorkers >= settings.noWorkersWarning {
            lastNoWorkers = now
            out.append(.log(.warning, "no workers connected; waiting", ["done": "\(scheduler.completed)", "of": "\(scheduler.shardCount)"]))
        }
    }

    static func seconds(_ s: Double) -> String {
        let tenths = Int((s * 10).rounded())
        return "\(tenths / 10).\(tenths % 10)"
    }

    // MARK: - Directives from the scheduler

    mutating func apply(_ directives: [Scheduler.Directive], now: Double, _ out: inout [Directive]) {
        // Shards for the same worker from one decision travel in one message, except a shard that
        // was on a worker that died, which travels alone (see `Scheduler.careful`).
        var batches: [(worker: PeerID, shards: [Int])] = []
        var open: [PeerID: Int] = [:]
        for d in directives {
            switch d {
            case .assign(let shard, let w):
                if scheduler.careful.contains(shard) {
                    batches.append((w, [shard]))
                } else if let i = open[w] {
                    batches[i].shards.append(shard)
                } else {
                    open[w] = batches.count
                    batches.append((w, [shard]))
                }
            case .finish:
                finishHeld = true
                finishIfDue(now: now, &out)
            case .poison(let shard, let failures, let cause):
                return fail(
                    "\(plan.describe(shard)) failed \(failures) times, last because \(cause); it may crash or hang every worker that runs it, so the job stops (--max-failures sets the limit)",
                    &out)
            case .uncollected(let w, let shards):
                out.append(
                    .log(
                        .warning, "shards computed but never collected; computing them again",
                        [
                            "worker": "\(names[w] ?? "\(w)")",
                            "shards": "\(shards.count == 1 ? plan.describe(shards[0]) : "\(shards.count) shards from \(shards[0])")",
                            "collector": "\(collectorName)",
                            "hint":
                                "the worker's results did not reach the collector within \(Int(scheduler.policy.collectTimeout)) s: can that worker's host reach the collector's endpoint?"
                        ]))
            }
        }
        for (w, shards) in batches { out.append(.sendShards(shards, to: w)) }
    }

    mutating func fail(_ reason: String, _ out: inout [Directive]) {
        guard outcome == nil else { return }
        for w in scheduler.workers where names[w] != nil { out.append(.send(.end(ok: false, reason: reason), to: w)) }
        out.append(.toCollector(.end(ok: false, reason: reason)))
        outcome = .failed(reason)
        out.append(.exit(outcome!))
    }
}
