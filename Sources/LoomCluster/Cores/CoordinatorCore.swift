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
    var jobSent: [PeerID: Double] = [:]
    var modelSends: [PeerID: Int] = [:]
    /// Joined before the collector was ready: sent the job once it is.
    var waiting: [PeerID] = []
    /// Connections declared lost, and when each was last told to rejoin.
    var buried: [PeerID: Double] = [:]
    /// The worker names of connections declared dead: if the same worker is heard from again, it
    /// did not crash, and the shard it was charged with is uncharged (``Scheduler/forgive(_:now:)``).
    var buriedNames: [PeerID: String] = [:]
    public internal(set) var everJoined: Set<PeerID> = []
    var collector = CollectorState.claiming
    var collectorSeen = 0.0
    var lastCollect = -Double.infinity
    private var lastHeartbeat = -Double.infinity
    private var lastNoWorkers = 0.0
    var lastCollectorWarning = 0.0
    /// Heartbeat rounds so far (one every `heartbeat` seconds: every worker pinged, leases checked).
    public private(set) var heartbeatRounds = 0
    /// Shards the collector's journal held when the job started (a resumed job).
    public internal(set) var resumedShards = 0
    /// The collector's figures, as its last `ack` gave them.
    public internal(set) var collectorTotals = WireMessage.CollectorTotals()
    /// Examples in acknowledged shards.
    public internal(set) var examplesDone = 0
    public internal(set) var outcome: Outcome? = nil

    public init(jobId: String, modelSha256: String, plan: ShardPlan, settings: Settings = Settings(), collectorName: String) {
        self.jobId = jobId
        self.modelSha256 = modelSha256
        self.plan = plan
        self.settings = settings
        self.collectorName = collectorName
        var policy = settings.policy
        // A worker cut off comes back within its own liveness window (it notices, then reconnects):
        // a verdict waits for three such windows.
        if policy.verdictDelay > 0 { policy.verdictDelay = max(policy.verdictDelay, 3 * settings.silence) }
        scheduler = Scheduler(shardCount: plan.shardCount, policy: policy)
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
            case .held(let shard, let failures, let seconds):
                out.append(
                    .log(
                        .warning, "a shard failed as often as --max-failures allows; held before failing the job, in case its workers come back",
                        ["shard": "\(plan.describe(shard))", "failures": "\(failures)", "seconds": "\(Int(seconds.rounded()))"]))
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
