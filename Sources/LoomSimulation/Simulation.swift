import LoomCluster
import LoomProduct

/// A deterministic simulation of a Loom cluster: the real ``CoordinatorCore``, ``CollectorCore``
/// and wire codec, driven through a seeded, simulated world of workers and network.
///
/// The network is made of connections, as ZeroMQ over TCP is: each delivers in order, with a
/// random delay, so messages on different connections are reordered. A connection that breaks
/// (a fault, a crash, a partition) loses what is in flight on it, and its ends start over as the
/// real roles do. Results, acks and heartbeats (whose receivers must be idempotent) are also
/// duplicated at random. Workers crash, stall and run slowly; the coordinator and the collector
/// crash and restart, the collector from its journal. Every message crosses the real codec. Each
/// worker's session decisions are the real ``WorkerSession``'s; only its compute is simulated.
///
/// After every step the invariants are checked:
/// - no shard is written to the result twice once journaled, and none is journaled twice;
/// - every shard the coordinator was told is acknowledged is in the journal (nothing acknowledged is lost);
/// - no worker is sent more shards than the credit it granted;
/// and at the end: a job without a poison shard finishes, with every shard's result right,
/// within ``Config/finishBound`` seconds of the last fault; one with a poison shard fails,
/// naming it, within the same bound.
public struct Simulation {
    public struct Config: Sendable {
        public var seed: UInt64 = 1
        public var workers = 20
        public var shards = 400
        /// Credit each worker grants at the start.
        public var credit = 2
        /// Mean seconds a shard takes on a normal worker; slow workers take 5 times as long.
        public var shardSeconds = 0.5
        public var slowFraction = 0.1
        /// One-way latency of a message, seconds.
        public var latency: ClosedRange<Double> = 0.0002...0.01
        /// Faults happen in `0..<faultWindow` seconds; none after.
        public var faults = true
        public var faultWindow = 10.0
        /// Per worker per second.
        public var crashRate = 0.02
        public var stallRate = 0.02
        public var breakRate = 0.02
        /// Per message of the idempotent kinds.
        public var duplicateRate = 0.02
        /// Crashes of each within the fault window.
        public var coordinatorCrashes = 1
        public var collectorCrashes = 1
        /// A shard that crashes every worker that computes it.
        public var poisonShard: Int? = nil
        /// A worker whose every result is wrong by one bit (set `settings.verify` to catch it).
        public var liar: Int? = nil
        /// Seconds after the last fault within which the job must be over.
        public var finishBound = 120.0
        /// A broken collector, to show that the checks catch one: it acknowledges shards as soon as
        /// they are written, before they are journaled.
        public var ackBeforeJournal = false
        /// Seconds over which the workers start.
        public var startSpread = 1.0
        public var settings: CoordinatorCore.Settings = {
            var s = CoordinatorCore.Settings()
            s.policy.lease = 10
            return s
        }()
        public init() {}
    }

    public struct Report: Sendable, CustomStringConvertible {
        public var seed: UInt64
        public var outcome: CoordinatorCore.Outcome?
        /// Simulated seconds until the end.
        public var seconds = 0.0
        public var events = 0
        public var messages = 0
        public var violations: [String] = []
        /// What `--verify` did (when `settings.verify` > 0), as the coordinator left it.
        public var verification: Verification.Summary? = nil
        /// Wall-clock seconds spent inside the coordinator's core, and its heartbeat rounds.
        public var coordinatorCoreSeconds = 0.0
        public var heartbeatRounds = 0
        public var heartbeatSeconds = 0.0
        public var faults: [String: Int] = [:]
        public var ok: Bool { violations.isEmpty }

        public var description: String {
            let o: String =
                switch outcome {
                case .done?: "done"
                case .failed(let r)?: "failed: \(r)"
                case nil: "unfinished"
                }
            let f = faults.keys.sorted().map { "\($0) \(faults[$0]!)" }.joined(separator: ", ")
            return "seed \(seed): \(o) at t=\(Int(seconds)) s, \(events) events, \(messages) messages; faults: \(f.isEmpty ? "none" : f)"
                + (violations.isEmpty ? "" : "\n  VIOLATED: " + violations.prefix(5).joined(separator: "\n  VIOLATED: "))
        }
    }

    // MARK: - The world

    enum Place: Hashable { case coordinator, collector, worker(Int) }

    struct Packet {
        var from: Place
        var to: Place
        /// The connection: both ends' incarnations when it was sent. A message whose connection has since changed is lost.
        var link: Link
        var bytes: [UInt8]
        var type: MessageType
        var dataFrames: Int
        /// Result values (the simulated output rows), one per shard.
        var values: [UInt64]
    }

    struct Link: Hashable { var worker: Int; var session: Int; var coordinator: Int; var collector: Int }

    enum Event {
        case deliver(Packet)
        case coordinatorTick(epoch: Int)
        case collectorTick(epoch: Int)
        case workerTimer(Int, session: Int)
        case computed(Int, session: Int, shard: Int)
        /// A worker (re)starts its session `session` (after a crash, a lost connection, or at the start).
        case workerStart(Int, session: Int)
        case wake(Int, session: Int)
        case coordinatorCrash, coordinatorBack
        case collectorCrash, collectorBack
        case fault
    }

    struct Worker {
        let index: Int
        /// Each connection (and each process) gets a new session, and so a new routing id.
        var session = 0
        var alive = false
        var finished = false
        var slow = false
        var stalledUntil = -Double.infinity
        var buffered: [Packet] = []
        var hasJob = false
        var modelCached = false
        /// The real worker-session core for the current session, and when the session began.
        var core: WorkerSession? = nil
        var sessionStart = 0.0
        var queue: [Int] = []
        var computing: Int? = nil
        /// Credit granted and not yet used by a shard received.
        var credit = 0
        /// A new process after each crash: its name (`loom worker`'s host, pid and random tag) is new.
        var incarnation = 0
        /// The name the worker gives in `hello` and its results: one per process, kept across its connections.
        var name: String { incarnation == 0 ? "w\(index)" : "w\(index)#\(incarnation)" }
        var peer: PeerID { PeerID(Array("w\(index).\(session)".utf8)) }
        var computePeer: PeerID { PeerID(Array("w\(index).\(session).c".utf8)) }
        init(index: Int) { self.index = index }
    }

    let config: Config
    var random: SeededRandom
    var queue = EventQueue<Event>()
    var now = 0.0
    var report: Report
    let plan: ShardPlan
    let jobId = "simulated-job"
    let modelSha = String(repeating: "5a", count: 32)

    var coordinator: CoordinatorCore? = nil
    var coordinatorEpoch = 0
    var collector: CollectorCore? = nil
    var collectorEpoch = 0
    /// Durable: the collector's journal and result rows survive its crashes.
    var journal: [Bool]
    var rows: [UInt64?]
    var workers: [Worker]
    /// Per connection, when its last message arrives (connections deliver in order).
    var lastArrival: [Link: Double] = [:]
    var inHand: [UInt64] = []
    /// Shards the collector revoked (`--verify`).
    var revoked: Set<Int> = []
    var inHandShards: [Int] = []
    var done = false

    public init(_ config: Config) throws {
        self.config = config
        random = SeededRandom(seed: config.seed)
        report = Report(seed: config.seed)
        plan = try ShardPlan(examples: config.shards, batchSize: 1)
        journal = .init(repeating: false, count: config.shards)
        rows = .init(repeating: nil, count: config.shards)
        workers = (0..<config.workers).map { Worker(index: $0) }
        for i in workers.indices { workers[i].slow = random.chance(config.slowFraction) }
    }

    /// The value a shard's result must hold.
    static func value(of shard: Int) -> UInt64 {
        var r = SeededRandom(seed: UInt64(shard) &* 0x2545_F491_4F6C_DD1D)
        return r.next()
    }

    /// Runs the simulation to its end and returns what happened.
    public static func run(_ config: Config) throws -> Report {
        var s = try Simulation(config)
        s.start()
        s.loop()
        s.finalChecks()
        return s.report
    }

    mutating func start() {
        startCoordinator()
        startCollector()
        for i in workers.indices { queue.push(random.uniform(0...config.startSpread), .workerStart(i, session: 0)) }
        if config.faults {
            let faultCount = Int(Double(config.workers) * (config.crashRate + config.stallRate + config.breakRate) * config.faultWindow)
            for _ in 0..<faultCount { queue.push(random.uniform(0...config.faultWindow), .fault) }
            for _ in 0..<config.coordinatorCrashes { queue.push(random.uniform(1...config.faultWindow), .coordinatorCrash) }
            for _ in 0..<config.collectorCrashes { queue.push(random.uniform(1...config.faultWindow), .collectorCrash) }
        }
    }

    mutating func loop() {
        let bound = (config.faults ? config.faultWindow : 0) + config.finishBound
        while !done, let (t, event) = queue.pop() {
            guard t <= bound else { break }
            now = t
            report.events += 1
            step(event)
        }
        report.seconds = now
    }

    /// The checks at the end: the job is over, as it should be, within the bound.
    mutating func finalChecks() {
        guard report.violations.isEmpty else { return }
        switch report.outcome {
        case nil:
            violated(
                "the job was not over \(Int(config.finishBound)) s after the last possible fault (\(journal.filter { $0 }.count) of \(journal.count) shards journaled, \(workers.filter { $0.alive }.count) workers alive)"
            )
        case .failed(let reason)?:
            if let poison = config.poisonShard {
                if !reason.contains(plan.describe(poison)) { violated("the job failed, but not on the poison shard \(poison): \(reason)") }
            } else {
                violated("the job failed: \(reason)")
            }
        case .done?:
            if config.poisonShard != nil { violated("the job finished although shard \(config.poisonShard!) crashes every worker") }
            for s in 0..<journal.count where !journal[s] || rows[s] != Self.value(of: s) {
                violated("shard \(s)'s result is \(rows[s].map { "\($0)" } ?? "missing"), not the one computed")
                break
            }
        }
    }

    mutating func violated(_ text: String) {
        report.violations.append("t=\(now): \(text)")
        done = true
    }

    mutating func count(_ fault: String) {
        report.faults[fault, default: 0] += 1
    }

    // MARK: - Sending

    mutating func send(_ m: WireMessage, from: Place, to: Place, worker: Int = -1, session: Int = -1, values: [UInt64] = [], dataFrames: Int? = nil) {
        let link = Link(worker: worker, session: session, coordinator: coordinatorEpoch, collector: collectorEpoch)
        let packet = Packet(from: from, to: to, link: link, bytes: m.body, type: m.type, dataFrames: dataFrames ?? m.dataFrameCount ?? 0, values: values)
        report.messages += 1
        let copies = [.result, .ack, .heartbeat].contains(m.type) && random.chance(config.faults ? config.duplicateRate : 0) ? 2 : 1
        for _ in 0..<copies {
            // In order on its connection, after a random latency.
            let arrival = max(now + random.uniform(config.latency), (lastArrival[link] ?? 0) + 1e-6)
            lastArrival[link] = arrival
            queue.push(arrival, .deliver(packet))
        }
    }

    /// Whether the connection a packet travelled on still stands.
    func stands(_ p: Packet) -> Bool {
        if p.link.coordinator != coordinatorEpoch && (p.from == .coordinator || p.to == .coordinator) { return false }
        if p.link.collector != collectorEpoch && (p.from == .collector || p.to == .collector) { return false }
        if p.link.worker >= 0 {
            let w = workers[p.link.worker]
            return w.alive && w.session == p.link.session
        }
        return true
    }

    func decode(_ p: Packet) -> WireMessage? {
        p.bytes.withUnsafeBytes { try? WireMessage.decode(p.type, body: $0, dataFrames: p.dataFrames, peer: "simulated") }
    }

    // MARK: - Events

    mutating func step(_ event: Event) {
        switch event {
        case .deliver(let p):
            guard stands(p), let m = decode(p) else { return }
            switch p.to {
            case .coordinator: coordinatorReceives(p, m)
            case .collector: collectorReceives(p, m)
            case .worker(let i): workerReceives(i, p, m)
            }
        case .coordinatorTick(let epoch):
            guard epoch == coordinatorEpoch, coordinator != nil else { return }
            coordinatorHandle(.tick)
            queue.push(now + 0.2, .coordinatorTick(epoch: epoch))
        case .collectorTick(let epoch):
            guard epoch == collectorEpoch, collector != nil else { return }
            collectorHandle(.tick)
            queue.push(now + 0.05, .collectorTick(epoch: epoch))
        case .workerTimer(let i, let session):
            workerTimer(i, session: session)
        case .computed(let i, let session, let shard):
            computed(i, session: session, shard: shard)
        case .workerStart(let i, let session):
            guard workers[i].session == session, !workers[i].finished else { return }
            startSession(i)
        case .wake(let i, let session):
            wake(i, session: session)
        case .coordinatorCrash:
            guard coordinator != nil else { return }
            count("coordinator crash")
            coordinator = nil
            coordinatorEpoch += 1
            // Its connections are gone: every worker notices within its liveness and starts over.
            for i in workers.indices where workers[i].alive && !workers[i].finished {
                endSession(i, restartIn: random.uniform(0.1...config.settings.silence))
            }
            queue.push(now + random.uniform(1...3), .coordinatorBack)
        case .coordinatorBack:
            startCoordinator()
        case .collectorCrash:
            guard collector != nil else { return }
            count("collector crash")
            collector = nil
            collectorEpoch += 1
            queue.push(now + random.uniform(1...3), .collectorBack)
        case .collectorBack:
            startCollector()
        case .fault:
            fault()
        }
    }

    /// The worker and session of a routing id `w<index>.<session>`.
    func worker(of peer: PeerID) -> (Int, Int)? {
        let parts = String(decoding: peer.bytes, as: UTF8.self).dropFirst().split(separator: ".")
        guard parts.count == 2, let i = Int(parts[0]), let s = Int(parts[1]), workers.indices.contains(i) else { return nil }
        return (i, s)
    }
}
