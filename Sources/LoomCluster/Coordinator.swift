import Foundation
import Logging
import LoomONNX
import LoomProduct
import LoomTensor
import Synchronization
import ZeroMQ

/// Serves one job to workers: hands out shards against their credit, forwards the model and
/// the job on request, and ends the job once the collector has published the result.
///
/// The scheduling decisions are the ``Scheduler``'s; this class is the shell around it that
/// owns the sockets (a ROUTER for workers, a DEALER to the collector), the clock and the logs.
/// ``run()`` blocks the calling thread, which owns both sockets.
public final class Coordinator {
    /// What the coordinator is told to do.
    public struct Options: Sendable {
        /// Where workers connect.
        public var bind: String
        /// A collector that runs elsewhere; nil runs one in this process.
        public var collector: String?
        /// The results folder, for the in-process collector.
        public var out: String?
        public var overwrite = false
        public var progress: ProgressReporter.Style = .auto
        /// Where the in-process collector binds (default: beside `bind`).
        public var collectorBind: String?
        /// The host workers should use for this host's endpoints (`--advertise`); nil: each worker
        /// uses the host through which it reached the coordinator (see ``Endpoint``).
        public var advertise: String?
        /// Seconds between heartbeats, both ways.
        public var heartbeat: Double = 1
        /// Missed heartbeats after which a worker is declared dead.
        public var liveness: Int = 3
        /// Leases, poison shards, speculation.
        public var policy = Scheduler.Policy()
        /// Seconds the whole job may take; nil: no bound.
        public var deadline: Double? = nil

        public init(bind: String, collector: String? = nil, out: String? = nil) {
            self.bind = bind
            self.collector = collector
            self.out = out
        }
    }

    let job: Job
    let options: Options
    let context: Context
    var logger: Logger
    let descriptor: JobDescriptor
    /// Set (from any thread, a signal handler's watcher say) to stop the job.
    public let cancelled = Atomic<Bool>(false)
    /// Called with the endpoint workers should connect to, once bound.
    public var onBound: ((String) throws -> Void)? = nil
    /// Called about every 200 ms on the coordinator's thread; a non-nil answer fails the job with that reason.
    public var tick: (() -> String?)? = nil

    /// The workers' socket, bound by ``listen(context:bind:)`` before the job was loaded.
    let listening: Socket?

    /// - Parameter listening: a socket from ``listen(context:bind:)`` (on this thread); nil binds `options.bind` in ``run()``.
    public init(job: Job, options: Options, context: Context, listening: Socket? = nil, logger: Logger) {
        self.job = job
        self.options = options
        self.context = context
        self.listening = listening
        self.descriptor = JobDescriptor(job: job)
        self.logger = logger
        self.logger[metadataKey: "role"] = "coordinator"
    }

    struct WorkerInfo {
        var name: String
    }

    /// Runs the job to its end; returns the number of workers that took part. Throws if the job fails.
    public func run() throws -> Int {
        let started = Date()
        let router = try listening ?? Self.listen(context: context, bind: options.bind)
        defer { router.close() }
        let silence = options.heartbeat * Double(options.liveness)
        try router.dropSilentPeers(interval: options.heartbeat, timeout: silence)
        let endpoint = router.lastEndpoint
        logger.info("listening", metadata: ["endpoint": "\(endpoint)", "job": "\(descriptor.jobId.prefix(12))",
                                            "kernels": "\(job.spec.kernels?.rawValue ?? "openblas-auto") (OpenBLAS \(BLAS.loadedCoreName ?? "not loaded"))"])
        try onBound?(endpoint)

        // The collector: elsewhere, or a thread of this process.
        var collectorThread: CollectorThread? = nil
        let collectorEndpoint: String
        if let external = options.collector {
            collectorEndpoint = external
        } else {
            guard let out = options.out else { throw ClusterError("the coordinator needs --out (or --collector)") }
            let bind = options.collectorBind ?? Self.siblingEndpoint(of: endpoint)
            let collector = Collector(context: context, bind: bind, out: out, overwrite: options.overwrite, logger: logger)
            collector.heartbeat = options.heartbeat
            collector.liveness = options.liveness
            let thread = CollectorThread(collector: collector)
            collectorEndpoint = try thread.start()
            collectorThread = thread
        }
        let advertised = Endpoint.advertised(collectorEndpoint, host: options.advertise)
        // X in its wire encoding, before the job's clock starts at the collector.
        let encodedX = XCodec.Encoded(job.inputs.x, as: descriptor.xEncoding)
        let toCollector = try Socket(context, .dealer)
        defer { toCollector.close() }
        try toCollector.dropSilentPeers(interval: options.heartbeat, timeout: silence)
        try toCollector.connect(collectorEndpoint)
        let descriptorJSON = Array(try JSONEncoder().encode(descriptor))
        try toCollector.send(.collect, body: wire { $0.blob(descriptorJSON) })

        var scheduler = Scheduler(shardCount: descriptor.plan.shardCount, policy: options.policy)
        let clock = ContinuousClock()
        let origin = clock.now
        func now() -> Double { let d = clock.now - origin; return Double(d.components.seconds) + Double(d.components.attoseconds) * 1e-18 }
        var lastSeen: [PeerID: Double] = [:]
        var collectorSeen = 0.0
        var lastCollect = 0.0
        var collectorLost = false
        var lastHeartbeat = 0.0
        var lastNoWorkers = 0.0
        var workers: [PeerID: WorkerInfo] = [:]
        var waiting: [PeerID] = []
        /// When each worker was last sent the job.
        var jobSent: [PeerID: Double] = [:]
        var collectorReady = false
        var examplesDone = 0
        var everJoined = Set<PeerID>()
        /// Connections declared lost, and when each was last told to rejoin.
        var buried: [PeerID: Double] = [:]
        let sentBytes = UnsafeMutablePointer<Int>.allocate(capacity: 1)
        sentBytes.initialize(to: 0)
        defer { sentBytes.deallocate() }
        let progress = ProgressReporter(totalShards: descriptor.plan.shardCount, totalExamples: descriptor.plan.examples, style: options.progress)

        func fail(_ text: String) throws -> Never {
            for w in workers.keys { _ = try? router.send(.end, to: w, body: wire { $0.u8(0); $0.string(text) }) }
            _ = try? toCollector.send(.end, body: wire { $0.u8(0); $0.string(text) })
            // Closing with LINGER 0 could drop these last words: a worker that misses `end` waits for a coordinator that is gone.
            router.close(lingeringFor: 1000)
            toCollector.close(lingeringFor: 1000)
            collectorThread?.join()
            throw ClusterError(text)
        }

        /// Declares a worker dead: its shards go to others.
        func bury(_ w: PeerID, why: String) throws {
            let name = workers[w]?.name ?? "\(w)"
            workers[w] = nil
            lastSeen[w] = nil
            buried[w] = -.infinity
            logger.warning("worker lost", metadata: ["worker": "\(name)", "why": "\(why)"])
            try apply(scheduler.leave(w, now: now()))
        }

        func sendJob(_ w: PeerID) throws {
            jobSent[w] = now()
            var body = WireWriter()
            body.blob(descriptorJSON)
            body.string(advertised)
            try router.send(.job, to: w, body: body, data: job.inputs.args.map { .bytes(FloatBytes.encode($0)) }, counting: sentBytes)
        }

        func apply(_ directives: [Scheduler.Directive]) throws {
            // Shards for the same worker from one decision travel in one message.
            var batches: [(worker: PeerID, shards: [Int])] = []
            for d in directives {
                switch d {
                case .assign(let shard, let w):
                    // A shard that was on a worker that died travels alone (see `Scheduler.careful`).
                    let alone = scheduler.careful.contains(shard)
                    if !alone, let i = batches.lastIndex(where: { $0.worker == w && !scheduler.careful.contains($0.shards[0]) }) {
                        batches[i].shards.append(shard)
                    } else {
                        batches.append((w, [shard]))
                    }
                case .finish:
                    try toCollector.send(.finish, body: wire {
                        $0.string(descriptor.jobId); $0.int(everJoined.count); $0.int(sentBytes.pointee)
                        $0.int(scheduler.deadWorkers); $0.int(scheduler.expiredLeases); $0.int(scheduler.reissued)
                    })
                case .poison(let shard, let failures, let cause):
                    try fail("\(descriptor.plan.describe(shard)) failed \(failures) times, last because \(cause); it may crash or hang every worker that runs it, so the job stops (--max-failures sets the limit)")
                case .uncollected(let w, let shards):
                    logger.warning("shards computed but never collected; computing them again", metadata: [
                        "worker": "\(workers[w]?.name ?? "\(w)")", "shards": "\(shards.count == 1 ? descriptor.plan.describe(shards[0]) : "\(shards.count) shards from \(shards[0])")",
                        "collector": "\(advertised)",
                        "hint": "the worker's results did not reach the collector within \(Int(scheduler.policy.collectTimeout)) s: can that worker's host reach the collector's endpoint?",
                    ])
                }
            }
            for (w, shards) in batches {
                var body = WireWriter()
                body.string(descriptor.jobId)
                body.u32(UInt32(shards.count))
                var frames: [OutgoingFrame] = []
                for shard in shards {
                    // Each distinct sequence travels once, whether or not the worker shares its rows in the batch.
                    let distinct = descriptor.space.distinctSequences(for: descriptor.plan.range(of: shard))
                    body.int(shard)
                    body.ints(distinct)
                    frames.append(.bytes(encodedX.rows(distinct)))
                }
                guard workers[w] != nil else { scheduler.undelivered(w, shards); continue }   // buried by an earlier batch
                let sent = try router.send(.shard, to: w, body: body, data: frames, counting: sentBytes)
                if !sent {
                    scheduler.undelivered(w, shards)
                    try bury(w, why: "its connection is gone")
                }
            }
        }

        while true {
            if cancelled.load(ordering: .relaxed) { try fail("the job was cancelled") }
            if let reason = tick?() { try fail(reason) }
            let t = now()
            if let deadline = options.deadline, t > deadline {
                try fail("the job did not finish within --deadline \(Int(deadline)) s (\(scheduler.completed) of \(scheduler.shardCount) shards done, \(workers.count) workers)")
            }
            if t - lastHeartbeat >= options.heartbeat {
                lastHeartbeat = t
                for w in Array(workers.keys) {
                    if let seen = lastSeen[w], t - seen > options.heartbeat * Double(options.liveness) {
                        try bury(w, why: "silent for \(String(format: "%.1f", t - seen)) s")
                    } else {
                        _ = try router.send(.heartbeat, to: w)
                    }
                }
                try apply(scheduler.tick(now: t))
                // The collector: heartbeats both ways; if it goes silent, re-send the job until a
                // (restarted) collector takes it up again from its journal.
                _ = try toCollector.send(.heartbeat, dontWait: true)
                if collectorReady && t - collectorSeen > options.heartbeat * Double(options.liveness) && !collectorLost {
                    collectorLost = true
                    collectorReady = false
                    logger.warning("collector lost; re-queueing the shards in flight and waiting for it", metadata: ["endpoint": "\(collectorEndpoint)"])
                    scheduler.paused = true
                    try apply(scheduler.collectorLost(now: t))
                }
                if !collectorReady && t - lastCollect >= options.heartbeat {
                    lastCollect = t
                    _ = try toCollector.send(.collect, body: wire { $0.blob(descriptorJSON) }, dontWait: true)
                }
                if workers.isEmpty && collectorReady && t - lastNoWorkers >= 10 {
                    lastNoWorkers = t
                    logger.warning("no workers connected; waiting", metadata: ["done": "\(scheduler.completed)", "of": "\(scheduler.shardCount)"])
                }
            }
            if let failure = collectorThread?.failure { try fail("the collector failed: \(failure)") }
            let ready = try poll([router, toCollector], timeoutMilliseconds: 200)
            if ready[1] {
                // Bounded drains: heartbeats and timers must be serviced even under a flood of messages.
                var budget = 512
                while budget > 0, let frames = try toCollector.receive(dontWait: true) {
                    budget -= 1
                    let m = try Message(frames: frames, routed: false, peerName: "collector \(collectorEndpoint)")
                    collectorSeen = now()
                    switch m.type {
                    case .heartbeat:
                        var r = try m.reader()
                        let held = r.isAtEnd ? descriptor.jobId : try r.string()
                        if collectorReady && held != descriptor.jobId && !collectorLost {
                            // A collector answers that does not hold the job: it was restarted.
                            collectorLost = true
                            collectorReady = false
                            logger.warning("the collector was restarted; re-queueing the shards in flight and sending it the job again")
                            scheduler.paused = true
                            try apply(scheduler.collectorLost(now: now()))
                        }
                    case .collectorReady:
                        var r = try m.reader()
                        _ = try r.string()
                        let resumed = try r.ints()
                        if collectorLost {
                            // A restarted collector: what its journal holds is done.
                            collectorLost = false
                            collectorReady = true
                            logger.notice("collector back", metadata: ["complete": "\(resumed.count)"])
                            try apply(scheduler.acknowledge(resumed, now: now()))
                            // Anything handed out while it was away may have been dropped: run it again.
                            scheduler.paused = false
                            try apply(scheduler.collectorLost(now: now()))
                            continue
                        }
                        if collectorReady { continue }
                        if !resumed.isEmpty {
                            scheduler = Scheduler(shardCount: descriptor.plan.shardCount, alreadyDone: resumed, policy: options.policy)
                            for s in resumed where s < descriptor.plan.shardCount { examplesDone += descriptor.plan.range(of: s).count }
                            logger.notice("resuming", metadata: ["complete": "\(resumed.count)", "of": "\(descriptor.plan.shardCount)"])
                            if scheduler.isComplete { try apply(scheduler.acknowledge([])) }
                        }
                        collectorReady = true
                        for w in waiting { try sendJob(w) }
                        waiting.removeAll()
                    case .ack:
                        var r = try m.reader()
                        guard try r.string() == descriptor.jobId else { continue }
                        let shards = try r.ints()
                        for s in shards where s >= 0 && s < descriptor.plan.shardCount { examplesDone += descriptor.plan.range(of: s).count }
                        try apply(scheduler.acknowledge(shards, now: now()))
                        progress.update(shardsDone: scheduler.completed, examplesDone: examplesDone, workers: workers.count)
                    case .finished:
                        var r = try m.reader()
                        let ok = try r.u8() == 1
                        let text = try r.string()
                        guard ok else { try fail("the collector could not publish the result: \(text)") }
                        progress.finish(shardsDone: scheduler.completed, examplesDone: examplesDone, workers: workers.count)
                        for w in workers.keys { _ = try? router.send(.end, to: w, body: wire { $0.u8(1); $0.string("done") }) }
                        // Workers whose hello is already here are told too, rather than left waiting for a job.
                        while let late = try? router.receive(dontWait: true) {
                            if let m = try? Message(frames: late, routed: true, peerName: "worker"), m.type == .hello, let w = m.peer, workers[w] == nil {
                                _ = try? router.send(.end, to: w, body: wire { $0.u8(1); $0.string("done") })
                            }
                        }
                        router.close(lingeringFor: 1000)
                        collectorThread?.join()
                        logger.info("done", metadata: ["seconds": "\(Date().timeIntervalSince(started))", "workers": "\(everJoined.count)"])
                        return everJoined.count
                    case .error:
                        var r = try m.reader()
                        _ = try r.string(); _ = try r.int()
                        try fail(try r.string())
                    default:
                        logger.warning("unexpected message from the collector", metadata: ["type": "\(m.type)"])
                    }
                }
            }
            if ready[0] {
                var budget = 512
                while budget > 0, let frames = try router.receive(dontWait: true) {
                    budget -= 1
                    let m: Message
                    do { m = try Message(frames: frames, routed: true, peerName: "worker") } catch {
                        logger.warning("dropped a message", metadata: ["why": "\(error)"])
                        continue
                    }
                    guard let w = m.peer else { continue }
                    if workers[w] != nil { lastSeen[w] = now(); scheduler.heard(w, now: lastSeen[w]!) }
                    if workers[w] == nil && m.type != .hello {
                        // A connection we declared lost is heard from again (the worker was stalled, or
                        // cut off by a partition, or these are its last words arriving late). Its shards
                        // have gone to others: tell it to start over on a new connection, at most once a
                        // second, rather than take its reports for shards it no longer holds.
                        let t = now()
                        if t - (buried[w] ?? -.infinity) >= 1 {
                            if buried[w] == -.infinity { logger.notice("a worker declared lost is back; told to join again", metadata: ["worker": "\(w)"]) }
                            buried[w] = t
                            _ = try router.send(.rejoin, to: w, dontWait: true)
                        }
                        continue
                    }
                    switch m.type {
                    case .hello:
                        var r = try m.reader()
                        let name = try r.string()
                        if workers[w] != nil {
                            // A repeated hello. A worker says hello every second until it has a job, so
                            // one that waited for this coordinator has several queued, which arrive
                            // together: answer the first only (each job sent restarts the worker's
                            // compute thread). One that says hello again well after its job was sent
                            // has lost it (or our answer): send it again.
                            if collectorReady, !waiting.contains(w), now() - (jobSent[w] ?? -.infinity) >= 1.5 { try sendJob(w) }
                            continue
                        }
                        workers[w] = WorkerInfo(name: name)
                        lastSeen[w] = now()
                        everJoined.insert(w)
                        logger.info("worker joined", metadata: ["worker": "\(name)"])
                        if collectorReady { try sendJob(w) } else { waiting.append(w) }
                    case .needModel:
                        var r = try m.reader()
                        guard try r.string() == descriptor.model.sha256 else { continue }
                        let dir = URL(fileURLWithPath: job.spec.modelPath).deletingLastPathComponent().path
                        let names = ["model.onnx"] + descriptor.modelFiles
                        let files = try [FileIO.readAll(job.spec.modelPath)] + descriptor.modelFiles.map { try FileIO.readAll(dir + "/" + $0) }
                        try router.send(.model, to: w, body: wire { b in
                            b.string(descriptor.model.sha256)
                            b.u32(UInt32(names.count))
                            for n in names { b.string(n) }
                        }, data: files.map { .bytes($0) }, counting: sentBytes)
                    case .ready:
                        var r = try m.reader()
                        guard try r.string() == descriptor.jobId else { continue }
                        let credit = Int(try r.u32())
                        if !r.isAtEnd { scheduler.computed(w, try r.ints(), now: now()) }
                        try apply(scheduler.grant(w, min(credit, 256), now: now()))
                    case .error:
                        var r = try m.reader()
                        _ = try r.string()
                        let shard = try r.int()
                        let text = try r.string()
                        try fail(shard >= 0 ? "worker \(workers[w]?.name ?? "\(w)") failed on \(descriptor.plan.describe(shard)): \(text)" : text)
                    case .heartbeat:
                        break
                    default:
                        logger.warning("unexpected message", metadata: ["type": "\(m.type)", "from": "\(m.peerName)"])
                    }
                }
            }
            progress.update(shardsDone: scheduler.completed, examplesDone: examplesDone, workers: workers.count)
        }
    }

    /// Binds the socket workers connect to, before the job is loaded.
    ///
    /// Workers that wait for this coordinator (retrying every 10 ms) connect and say hello while
    /// it loads and hashes the job's inputs, so the job is sent to them the moment the collector
    /// is ready rather than up to one retry later. The calling thread owns the socket; pass it to
    /// ``init(job:options:context:listening:logger:)`` and call ``run()`` on the same thread.
    public static func listen(context: Context, bind: String) throws -> Socket {
        let router = try Socket(context, .router)
        try router.set(SocketOption.routerMandatory, 1)
        try router.bind(bind)
        return router
    }

    /// An endpoint for the in-process collector beside the coordinator's: same transport and host, another port or path.
    static func siblingEndpoint(of endpoint: String) -> String {
        if endpoint.hasPrefix("ipc://") { return endpoint + ".collector" }
        if endpoint.hasPrefix("tcp://"), let colon = endpoint.lastIndex(of: ":") {
            return String(endpoint[..<colon]) + ":*"
        }
        return "inproc://loom-collector"
    }
}

/// The in-process collector on a thread of its own (it owns its socket there).
final class CollectorThread: @unchecked Sendable {
    let collector: Collector
    private let lock = NSCondition()
    private var endpoint: String? = nil
    private var error: (any Error)? = nil
    private var done = false

    init(collector: Collector) { self.collector = collector }

    /// Starts the thread and waits until the collector is bound; returns its endpoint.
    func start() throws -> String {
        let thread = Thread { [self] in
            do {
                try collector.run { ep in
                    self.lock.lock(); self.endpoint = ep; self.lock.broadcast(); self.lock.unlock()
                }
            } catch {
                lock.lock(); self.error = error; lock.broadcast(); lock.unlock()
            }
            lock.lock(); done = true; lock.broadcast(); lock.unlock()
        }
        thread.name = "loom-collector"
        thread.start()
        lock.lock()
        defer { lock.unlock() }
        while endpoint == nil && error == nil && !done { lock.wait() }
        if let error { throw error }
        guard let endpoint else { throw ClusterError("the collector stopped before it was bound") }
        return endpoint
    }

    /// The collector's failure, if it failed.
    var failure: (any Error)? {
        lock.lock(); defer { lock.unlock() }
        return error
    }

    /// Waits for the collector to finish (it returns after publishing or on `end`).
    func join(timeout: TimeInterval = 30) {
        lock.lock()
        defer { lock.unlock() }
        let deadline = Date().addingTimeInterval(timeout)
        while !done && lock.wait(until: deadline) {}
    }
}
