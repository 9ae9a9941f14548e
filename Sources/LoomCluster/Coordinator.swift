import FoundationEssentials
import Logging
import LoomONNX
import LoomProduct
import LoomSystem
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
        /// Heartbeats, liveness, leases, the deadline: the core's settings.
        public var settings = CoordinatorCore.Settings()
        /// CURVE keys, or none.
        public var security = Security.none
        /// `--status-file`: the job's figures as JSON, every 2 s and at the end.
        public var statusFile: String?
        /// `--metrics`: the same figures as metrics.
        public var metrics: JobMetrics?

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

    /// Runs the job to its end; returns the number of workers that took part. Throws if the job fails.
    ///
    /// The shell: it owns the sockets, the clock and the logs, turns what arrives into events for
    /// the ``CoordinatorCore`` and carries out its directives. It decides nothing itself.
    public func run() throws -> Int {
        let started = Date()
        let settings = options.settings
        let router = try listening ?? Self.listen(context: context, bind: options.bind, security: options.security)
        defer { router.close() }
        try router.dropSilentPeers(interval: settings.heartbeat, timeout: settings.silence)
        let endpoint = router.lastEndpoint
        logger.info(
            "listening",
            metadata: [
                "endpoint": "\(endpoint)", "job": "\(descriptor.jobId.prefix(12))",
                "kernels": "\(job.spec.kernels?.rawValue ?? "openblas-auto") (OpenBLAS \(BLAS.loadedCoreName ?? "not loaded"))"
            ])
        try onBound?(endpoint)

        // The collector: elsewhere, or a thread of this process.
        var collectorThread: CollectorThread? = nil
        let collectorEndpoint: String
        if let external = options.collector {
            collectorEndpoint = external
        } else {
            guard let out = options.out else { throw ClusterError.noOutput }
            let bind = options.collectorBind ?? Self.siblingEndpoint(of: endpoint)
            let collector = Collector(context: context, bind: bind, out: out, overwrite: options.overwrite, logger: logger)
            // The collector in this process holds the coordinator's key, and takes the job only from it.
            collector.security = options.security
            collector.security.coordinatorKey = options.security.keys?.publicKey
            collector.heartbeat = settings.heartbeat
            collector.liveness = settings.liveness
            let thread = CollectorThread(collector: collector)
            collectorEndpoint = try thread.start()
            collectorThread = thread
        }
        let advertised = Endpoint.advertised(collectorEndpoint, host: options.advertise)
        // X in its wire encoding, before the job's clock starts at the collector.
        let encodedX = XCodec.Encoded(job.inputs.x, as: descriptor.xEncoding)
        let toCollector = try Socket(context, .dealer)
        defer { toCollector.close() }
        try toCollector.set(SocketOption.maxMessageSize, int64: Int64(WireMessage.maxControlFrame))
        try toCollector.dropSilentPeers(interval: settings.heartbeat, timeout: settings.silence)
        let collectorKey = options.collector == nil ? options.security.keys?.publicKey : options.security.collectorKey
        try options.security.connect(toCollector, to: collectorKey, what: "collector")
        // Started before connecting: a refused handshake is said in one line, not as a silent wait.
        let collectorMonitor = try toCollector.monitorConnections(in: context)
        defer { toCollector.stopMonitoring(); collectorMonitor.close() }
        var collectorWatch = CollectorConnectionWatch(endpoint: collectorEndpoint)
        try toCollector.connect(collectorEndpoint)
        let descriptorJSON = Array(try JSONEncoder().encode(descriptor))

        var core = CoordinatorCore(
            jobId: descriptor.jobId, modelSha256: descriptor.model.sha256, plan: descriptor.plan,
            settings: settings, collectorName: advertised)
        let clock = ContinuousClock()
        let origin = clock.now
        func now() -> Double { let d = clock.now - origin; return Double(d.components.seconds) + Double(d.components.attoseconds) * 1e-18 }
        var sentBytes = 0
        let progress = ProgressReporter(totalShards: descriptor.plan.shardCount, totalExamples: descriptor.plan.examples, style: options.progress)
        let status = StatusReporter.make(path: options.statusFile, metrics: options.metrics)

        /// Carries out directives (and those that follow from sends that fail); returns the outcome once the job is over.
        func perform(_ first: [CoordinatorCore.Directive]) throws -> CoordinatorCore.Outcome? {
            var pending = first[...]
            var outcome: CoordinatorCore.Outcome? = nil
            while let d = pending.popFirst() {
                switch d {
                case .send(let m, let w):
                    _ = try? router.send(m, to: w, dontWait: true)
                case .sendJob(let w):
                    let args = job.inputs.args.map { WireMessage.chunks(FloatBytes.encode($0)) }
                    let message = WireMessage.job(
                        descriptor: descriptorJSON, collector: advertised, collectorKey: collectorKey?.z85 ?? "", argChunks: args.map(\.count))
                    if try !router.send(message, to: w, data: args.flatMap { $0 }, counting: &sentBytes, dontWait: true) {
                        pending += core.handle(.undelivered(w, shards: []), now: now())
                    }
                case .sendModel(let w):
                    let dir = URL(fileURLWithPath: job.spec.modelPath).deletingLastPathComponent().path
                    let names = ["model.onnx"] + descriptor.modelFiles
                    let files = try [FileIO.readAll(job.spec.modelPath)] + descriptor.modelFiles.map { try FileIO.readAll(dir + "/" + $0) }
                    let message = WireMessage.model(
                        sha256: descriptor.model.sha256, files: zip(names, files).map { .init(name: $0, bytes: $1.count) })
                    if try !router.send(message, to: w, data: files.flatMap { WireMessage.chunks($0) }, counting: &sentBytes, dontWait: true) {
                        pending += core.handle(.undelivered(w, shards: []), now: now())
                    }
                case .sendShards(let shards, let w):
                    var frames: [OutgoingFrame] = []
                    var rows: [WireMessage.ShardRows] = []
                    for shard in shards {
                        // Each distinct sequence travels once, whether or not the worker shares its rows in the batch.
                        let distinct = descriptor.space.distinctSequences(for: descriptor.plan.range(of: shard))
                        rows.append(.init(shard: shard, rows: distinct))
                        frames.append(.bytes(encodedX.rows(distinct)))
                    }
                    let sent =
                        (try? router.send(
                            .shard(jobId: descriptor.jobId, shards: rows), to: w, data: frames,
                            counting: &sentBytes, dontWait: true)) ?? false
                    if !sent { pending += core.handle(.undelivered(w, shards: shards), now: now()) }
                case .toCollector(let m):
                    _ = try? toCollector.send(m, dontWait: true)
                case .collect:
                    _ = try? toCollector.send(.collect(descriptor: descriptorJSON, verify: core.verification.isOn), dontWait: true)
                case .finish(var f):
                    f.bytesToWorkers = sentBytes
                    _ = try? toCollector.send(.finish(f), dontWait: true)
                case .log(let level, let text, let metadata):
                    logger.log(level: level, "\(text)", metadata: metadata)
                case .exit(let o):
                    outcome = o
                }
            }
            return outcome
        }

        /// Ends the run: the last words go out (LINGER), the collector thread is joined.
        func finish(_ outcome: CoordinatorCore.Outcome) throws -> Int {
            switch outcome {
            case .done(let workers):
                progress.finish(shardsDone: core.scheduler.completed, examplesDone: core.examplesDone, workers: core.workerCount)
                status?.update(core: core, bytesToWorkers: sentBytes, state: "done", force: true)
                // Workers whose hello is already here are told too, rather than left waiting for a job.
                while let frames = try? router.receive(dontWait: true) {
                    if let m = try? Message(frames: frames, routed: true, peerName: "worker"), let w = m.peer, let decoded = try? m.decoded() {
                        _ = try perform(core.handle(.worker(w, decoded), now: now()))
                    }
                }
                router.close(lingeringFor: 1000)
                collectorThread?.join()
                logger.info("done", metadata: ["seconds": "\(Date().timeIntervalSince(started))", "workers": "\(workers)"])
                return workers
            case .failed(let reason):
                status?.update(core: core, bytesToWorkers: sentBytes, state: "failed", failure: reason, force: true)
                // Closing with LINGER 0 could drop the last words: a worker that misses `end` waits for a coordinator that is gone.
                router.close(lingeringFor: 1000)
                toCollector.close(lingeringFor: 1000)
                collectorThread?.join()
                throw ClusterError.jobFailed(reason: reason)
            }
        }

        // With keys, handshakes that fail before the ZAP handler is asked (a worker without keys) are logged too.
        let monitor = options.security.keys != nil ? try router.monitorConnections(in: context) : nil
        defer { if let monitor { router.stopMonitoring(); monitor.close() } }
        var handshakeWarnings = HandshakeWarnings(role: "coordinator")
        if let o = try perform(core.start(now: now())) { return try finish(o) }
        while true {
            var events: [CoordinatorCore.Event] = [.tick]
            if cancelled.load(ordering: .relaxed) { events.append(.fail("the job was cancelled")) }
            if let reason = tick?() { events.append(.fail(reason)) }
            if let failure = collectorThread?.failure { events.append(.fail("the collector failed: \(failure)")) }
            for e in events {
                if let o = try perform(core.handle(e, now: now())) { return try finish(o) }
            }
            let ready = try poll([router, toCollector, collectorMonitor] + (monitor.map { [$0] } ?? []), timeoutMilliseconds: 200)
            if ready[2] {
                while let frames = try collectorMonitor.receive(dontWait: true) {
                    if let event = Socket.connectionEvent(frames), let warning = collectorWatch.handle(event, now: now()) { logger.warning("\(warning)") }
                }
            }
            if let monitor, ready[3] {
                while let frames = try monitor.receive(dontWait: true) {
                    if let m = handshakeWarnings.warning(for: frames, now: now()) {
                        logger.warning("a connection failed its CURVE handshake", metadata: m.mapValues { "\($0)" })
                    }
                }
            }
            // Bounded drains: heartbeats and timers must be serviced even under a flood of messages.
            if ready[1] {
                var budget = 512
                while budget > 0, let frames = try toCollector.receive(dontWait: true) {
                    budget -= 1
                    let event: CoordinatorCore.Event
                    do {
                        event = .collector(try Message(frames: frames, routed: false, peerName: "collector \(collectorEndpoint)").decoded())
                    } catch let e as ProtocolError {
                        if case .version = e {
                            event = .fail("\(e)")
                        } else {
                            logger.warning("dropped a malformed message from the collector", metadata: ["why": "\(e)"])
                            continue
                        }
                    } catch {
                        logger.warning("dropped a malformed message from the collector", metadata: ["why": "\(error)"])
                        continue
                    }
                    if let o = try perform(core.handle(event, now: now())) { return try finish(o) }
                }
            }
            if ready[0] {
                var budget = 512
                while budget > 0, let frames = try router.receive(dontWait: true) {
                    budget -= 1
                    let message: Message
                    do { message = try Message(frames: frames, routed: true, peerName: "worker") } catch {
                        if case ProtocolError.version = error, let id = frames.first {
                            if let o = try perform(core.handle(.wrongVersion(PeerID(id.array), reason: "\(error)"), now: now())) { return try finish(o) }
                        } else {
                            logger.warning("dropped a message", metadata: ["why": "\(error)"])
                        }
                        continue
                    }
                    guard let w = message.peer else { continue }
                    let event: CoordinatorCore.Event
                    do { event = .worker(w, try message.decoded()) } catch { event = .malformed(w, reason: "\(error)") }
                    if let o = try perform(core.handle(event, now: now())) { return try finish(o) }
                }
            }
            progress.update(shardsDone: core.scheduler.completed, examplesDone: core.examplesDone, workers: core.workerCount)
            status?.update(core: core, bytesToWorkers: sentBytes)
        }
    }

    /// The largest message a worker may send the coordinator (`ZMQ_MAXMSGSIZE` on its socket).
    public static let maxIncomingMessage = 1 << 20

    /// Binds the socket workers connect to, before the job is loaded.
    ///
    /// Workers that wait for this coordinator (retrying every 10 ms) connect and say hello while
    /// it loads and hashes the job's inputs, so the job is sent to them the moment the collector
    /// is ready rather than up to one retry later. The calling thread owns the socket; pass it to
    /// ``init(job:options:context:listening:logger:)`` and call ``run()`` on the same thread.
    /// With keys, the socket is a CURVE server: only the keys its ZAP handler allows get in.
    public static func listen(context: Context, bind: String, security: Security = .none) throws -> Socket {
        let router = try Socket(context, .router)
        try router.set(SocketOption.routerMandatory, 1)
        // Workers send the coordinator only small messages (hello, ready, error): a larger one
        // closes that connection before libzmq allocates it.
        try router.set(SocketOption.maxMessageSize, int64: Int64(Self.maxIncomingMessage))
        try security.serve(router)
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
    private let lock = ConditionLock()
    private var endpoint: String? = nil
    private var error: (any Error)? = nil
    private var done = false

    init(collector: Collector) { self.collector = collector }

    /// Starts the thread and waits until the collector is bound; returns its endpoint.
    func start() throws -> String {
        try OSThread.start(name: "loom-collector") { [self] in
            do {
                try collector.run { ep in
                    self.lock.lock(); self.endpoint = ep; self.lock.broadcast(); self.lock.unlock()
                }
            } catch {
                lock.lock(); self.error = error; lock.broadcast(); lock.unlock()
            }
            lock.lock(); done = true; lock.broadcast(); lock.unlock()
        }
        lock.lock()
        defer { lock.unlock() }
        while endpoint == nil && error == nil && !done { lock.wait() }
        if let error { throw error }
        guard let endpoint else { throw ClusterError.collectorStopped }
        return endpoint
    }

    /// The collector's failure, if it failed.
    var failure: (any Error)? {
        lock.lock(); defer { lock.unlock() }
        return error
    }

    /// Waits for the collector to finish (it returns after publishing or on `end`).
    func join(timeout: Double = 30) {
        lock.lock()
        defer { lock.unlock() }
        let start = ContinuousClock.now
        while !done {
            let waited = start.duration(to: .now).components
            let left = timeout - (Double(waited.seconds) + Double(waited.attoseconds) * 1e-18)
            guard left > 0 else { return }
            lock.wait(seconds: left)
        }
    }
}

extension StatusReporter {
    /// Publishes the coordinator's figures (see ``StatusReporter/write(_:force:)``).
    func update(core: CoordinatorCore, bytesToWorkers: Int, state: String = "running", failure: String? = nil, force: Bool = false) {
        write(
            {
                let s = core.scheduler
                var status = self.status(
                    state: state, job: core.jobId, shardsTotal: s.shardCount, shardsDone: s.completed, examplesTotal: core.plan.examples,
                    examplesDone: core.examplesDone)
                status.shardsInFlight = s.inFlightCount
                status.workersAlive = core.workerCount
                status.workersLost = s.deadWorkers
                status.leasesExpired = s.expiredLeases
                status.shardsReissued = s.reissued
                status.bytesToWorkers = bytesToWorkers
                status.bytesToCollector = core.collectorTotals.resultBytes
                status.duplicatesDropped = core.collectorTotals.duplicates
                status.shardsResumed = core.resumedShards
                status.verification = core.verification.isOn ? core.verification.summary : nil
                status.failure = failure
                return status
            }(), force: force)
    }
}
