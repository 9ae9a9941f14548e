import FoundationEssentials
import Logging
import LoomFunctions
import LoomONNX
import LoomProduct
import LoomTensor
import Synchronization
import ZeroMQ

#if canImport(Glibc)
    import Glibc
#endif

/// A worker process: joins a coordinator, receives the job and the model, computes shards and
/// sends their outputs to the collector. Job-agnostic: everything comes from the coordinator.
///
/// Two threads, each owning its sockets: the main thread talks to the coordinator (job,
/// shards, heartbeats both ways) and the compute thread runs shards and sends results to the
/// collector; they talk over an inproc PAIR. Heartbeats go on while a long shard computes.
/// A worker whose coordinator answered and then was silent for `liveness` heartbeats drops its
/// work, reconnects after 1 s and joins again. A coordinator that has not answered yet is waited
/// for however long: not there yet (retrying every 10 ms for ``fastRetryWindow`` seconds, then
/// at most a second apart), or there but still loading its job.
public final class Worker {
    /// The coordinator's endpoint.
    public let coordinator: String
    /// Serve the next job of the same coordinator instead of exiting after one.
    public let keepAlive: Bool
    /// Shards it may hold at once, at least: one computing, one arriving.
    public let credit: Int
    /// The most shards it may hold when shards are so quick that `credit` cannot cover the round trip.
    public let maxCredit: Int
    /// The process that started this worker (`loom run --workers N`); the worker exits if it goes away.
    public var parentPID: pid_t? = nil
    /// Seconds between heartbeats, and missed heartbeats after which the coordinator is lost.
    public var heartbeat: Double = 1
    public var liveness: Int = 3
    /// Asked once every 100 ms: true stops the worker cleanly (SIGTERM, SIGINT), as if the job had ended.
    public var shouldStop: (@Sendable () -> Bool)? = nil
    /// Seconds without a coordinator after which the worker gives up and ``run()`` throws; nil: wait for ever.
    public var maxWait: Double? = nil
    /// CURVE keys (this worker's, and the coordinator's it pins), or none.
    public var security = Security.none
    /// Test-only faults and timings, read from `LOOM_TEST_*` in debug builds; the release binary has none.
    struct TestHooks {
        /// Crash when computing this shard (`LOOM_TEST_CRASH_SHARD`).
        var crashShard: Int? = nil
        /// Flip a bit of this shard's result (`LOOM_TEST_FLIP_BIT_SHARD`): a worker that computes wrong.
        var flipBitShard: Int? = nil
        /// Microseconds added to every shard (`LOOM_TEST_SHARD_DELAY_US`), so fault tests have time to inject faults.
        var shardDelay: UInt32? = nil
        /// Seconds without an answer before a waiting worker warns (`LOOM_TEST_WAIT_WARNING_S`).
        var waitWarning: Double = 10
        /// Seconds of fast retries before slowing down (`LOOM_TEST_FAST_RETRY_S`).
        var fastRetryWindow: Double = 10

        static let current: TestHooks = {
            var h = TestHooks()
            #if DEBUG
                let env = ProcessInfo.processInfo.environment
                h.crashShard = env["LOOM_TEST_CRASH_SHARD"].flatMap(Int.init)
                h.flipBitShard = env["LOOM_TEST_FLIP_BIT_SHARD"].flatMap(Int.init)
                h.shardDelay = env["LOOM_TEST_SHARD_DELAY_US"].flatMap(UInt32.init)
                h.waitWarning = env["LOOM_TEST_WAIT_WARNING_S"].flatMap(Double.init) ?? h.waitWarning
                h.fastRetryWindow = env["LOOM_TEST_FAST_RETRY_S"].flatMap(Double.init) ?? h.fastRetryWindow
            #endif
            return h
        }()
    }
    let crashShard = TestHooks.current.crashShard
    let flipBitShard = TestHooks.current.flipBitShard
    let shardDelay = TestHooks.current.shardDelay
    /// Seconds without an answer before a waiting worker warns (then every minute).
    let waitWarning = TestHooks.current.waitWarning
    let context: Context
    let cache: ModelCache
    let id: String
    var logger: Logger

    public init(
        context: Context, coordinator: String, keepAlive: Bool = false, credit: Int = 2, maxCredit: Int = 64,
        cache: ModelCache = ModelCache(), logger: Logger
    ) {
        self.context = context
        self.coordinator = coordinator
        self.keepAlive = keepAlive
        self.credit = max(1, credit)
        self.maxCredit = max(self.credit, maxCredit)
        self.cache = cache
        var host = [CChar](repeating: 0, count: 256)
        gethostname(&host, 255)
        self.id = "worker-\(String(cBuffer: host))-\(getpid())-\(UInt32.random(in: 0...0xFFFF))"
        self.logger = logger
        self.logger[metadataKey: "role"] = "worker"
        self.logger[metadataKey: "worker"] = "\(id)"
    }

    enum SessionEnd {
        case done, nextJob, parentGone
        /// The coordinator answered during the session, then went silent.
        case lost
        /// No coordinator has been there for ``fastRetryWindow`` seconds: reconnect, retrying less often.
        case slowDown
        /// The coordinator declared this connection lost (a partition, a stall): join again at once.
        case rejoin
    }

    /// Seconds a waiting worker retries its connection every 10 ms before it slows down to once a second
    /// (`LOOM_TEST_FAST_RETRY_S` in debug builds' tests).
    ///
    /// Workers are often started moments before their coordinator (by the benchmark, by cluster
    /// launchers), and then each 100 ms of join latency is a large part of a short job.
    let fastRetryWindow = TestHooks.current.fastRetryWindow

    /// Serves until the coordinator ends the job (or, with keep-alive, forever). Throws on a failure it reported.
    public func run() throws {
        var session = 0
        var patient = false
        var waitingSince = Date()
        while true {
            session += 1
            let end = try serve(session: session, patient: patient, waitingSince: waitingSince)
            patient = end == .slowDown
            if !patient { waitingSince = Date() }
            switch end {
            case .done, .parentGone: return
            case .nextJob, .slowDown: continue
            case .rejoin:
                logger.warning("the coordinator declared this worker lost (cut off or stalled); joining again")
                continue
            case .lost:
                // A coordinator that answered and then went quiet (a stall on either side, a crash, a
                // restart): start over after a second, with a new routing id and nothing held.
                logger.warning("lost the coordinator; reconnecting", metadata: ["in": "1 s"])
                let until = Date().addingTimeInterval(1)
                while Date() < until {
                    if let parentPID, getppid() != parentPID { return }
                    usleep(100_000)
                }
            }
        }
    }

    /// One connection to the coordinator, until the job ends or the coordinator is lost.
    ///
    /// The shell around ``WorkerSession``: it owns the socket, the connection monitor and the
    /// compute thread, and carries out the session's directives. `patient`: retry the connection
    /// after 10 ms doubling to 1 s (else every 10 ms, and slow down after ``fastRetryWindow``
    /// seconds with no coordinator there). `waitingSince`: when the wait for a coordinator began.
    private func serve(session: Int, patient: Bool, waitingSince: Date) throws -> SessionEnd {
        let socket = try Socket(context, .dealer)
        // The model and args come in chunks of at most 16 MiB; a shard's X rows in one frame.
        try socket.set(SocketOption.maxMessageSize, int64: Int64(WireMessage.maxWorkerFrame))
        defer { socket.close() }
        // A fresh routing id per connection: a coordinator may still hold the old one.
        try socket.set(SocketOption.routingID, bytes: Array("\(id)-\(session)".utf8))
        try security.connect(socket, to: security.coordinatorKey, what: "coordinator")
        // Retry the connection every 10 ms (libzmq's default is 100 ms): a worker started with its
        // coordinator joins within 10 ms of its bind. Once patient (no coordinator for 10 s), after
        // 10 ms doubling to 1 s: one started long before it joins within a second, for an attempt a second.
        try socket.set(SocketOption.reconnectInterval, 10)
        try socket.set(SocketOption.reconnectIntervalMax, patient ? 1000 : 0)
        // A connection that carries nothing (not even libzmq's pings) for the liveness window is
        // dropped, so a partition is noticed here too, and not only by the coordinator.
        try socket.dropSilentPeers(interval: heartbeat, timeout: heartbeat * Double(liveness))
        // Whether a coordinator process is at the other end (the transport's handshake done), even
        // before it answers: one that is still loading its job is waited for, not taken as lost.
        // Watched from before the connect, so a handshake that completes at once is not missed.
        let monitor = try socket.monitorConnections(in: context)
        defer { socket.stopMonitoring(); monitor.close() }
        try socket.connect(coordinator)
        // Each compute thread gets a PAIR of its own: a PAIR takes one peer, and a new thread
        // connecting while the old one's pipe is still being torn down would be turned away.
        var generation = 0
        func newPair() throws -> (Socket, String) {
            generation += 1
            let endpoint = "inproc://loom-worker-\(getpid())-\(session)-\(generation)"
            let s = try Socket(context, .pair)
            try s.bind(endpoint)
            return (s, endpoint)
        }
        var (pair, pairEndpoint) = try newPair()
        defer { pair.close() }
        var compute: ComputeThread? = nil
        defer { compute?.stop(pair) }
        var pendingJob: (descriptor: JobDescriptor, collector: (String, CurveKey?), args: [Tensor<Float>])? = nil
        var jobId: String? = nil

        var settings = WorkerSession.Settings()
        settings.heartbeat = heartbeat
        settings.liveness = liveness
        settings.keepAlive = keepAlive
        settings.patient = patient
        settings.fastRetryWindow = fastRetryWindow
        settings.waitWarning = waitWarning
        settings.maxWait = maxWait
        settings.waitedBefore = Date().timeIntervalSince(waitingSince)
        var core = WorkerSession(coordinator: coordinator, settings: settings)
        let started = Date()
        func now() -> Double { Date().timeIntervalSince(started) }

        func start(_ d: JobDescriptor, modelPath: String, collector: (endpoint: String, key: CurveKey?), args: [Tensor<Float>]) throws {
            if let running = compute {
                running.stop(pair)
                compute = nil
                pair.close()
                (pair, pairEndpoint) = try newPair()
            }
            do {
                let model = try ONNXModel(path: modelPath)
                let function = try d.spec.function.makeFunction(
                    FunctionContext(
                        sequenceLength: d.xRowShape[1], model: model,
                        batchSize: d.plan.batchSize, references: d.references))
                let thread = ComputeThread(
                    worker: self, descriptor: d, model: model, function: function, args: args,
                    collector: collector.endpoint, collectorKey: collector.key, pairEndpoint: pairEndpoint,
                    routingID: "\(id)-\(session)-compute-\(generation)")
                try thread.start()
                compute = thread
                jobId = d.jobId
                _ = core.handle(.working(true), now: now())
                try socket.send(.ready(jobId: d.jobId, credit: credit, computed: []))
            } catch {
                try socket.send(.error(jobId: d.jobId, shard: nil, message: "\(id): cannot start the job: \(error)"))
                throw error
            }
        }

        /// Carries out the session's directives; returns how the session ends, once it does.
        func perform(_ directives: [WorkerSession.Directive], message: Message? = nil) throws -> SessionEnd? {
            for d in directives {
                switch d {
                case .sendHello:
                    try hello(socket)
                case .sendHeartbeat:
                    // Never blocking: a heartbeat that cannot be queued now is not needed.
                    _ = try socket.send(.heartbeat(job: ""), dontWait: true)
                case .takeJob:
                    guard let message, case .job(let json, let endpoint, let key, let argChunks) = try message.decoded() else { continue }
                    let descriptor = try JSONDecoder().decode(JobDescriptor.self, from: Data(json))
                    // A wildcard or loopback host means the coordinator's host, as this worker reaches it.
                    let collector = (Endpoint.resolve(endpoint, via: coordinator), CurveKey(z85: key))
                    guard argChunks.count == descriptor.argShapes.count else {
                        throw ProtocolError.malformed(
                            peer: message.peerName, "the job has \(descriptor.argShapes.count) args, \(argChunks.count) came")
                    }
                    var offset = 0
                    let args = try zip(argChunks, descriptor.argShapes).map { n, shape in
                        defer { offset += n }
                        let frames = message.data[offset..<offset + n]
                        if n == 1 { return try FloatBytes.decode(frames.first!.bytes, shape: shape, peer: message.peerName) }
                        return try WireMessage.joined(frames).withUnsafeBytes { try FloatBytes.decode($0, shape: shape, peer: message.peerName) }
                    }
                    logger.info(
                        "job",
                        metadata: [
                            "job": "\(descriptor.jobId.prefix(12))", "shards": "\(descriptor.plan.shardCount)",
                            "kernels": "\(descriptor.spec.kernels?.rawValue ?? "openblas-auto")"
                        ])
                    // The job's kernels, or no part in it: a worker that cannot run them leaves, and
                    // the job goes on with the others (bits from other kernels would differ).
                    do { try BLAS.load(threads: 1, kernels: descriptor.spec.kernels) } catch {
                        throw ClusterError.cannotJoin(job: descriptor.jobId, reason: "\(error)")
                    }
                    if let path = cache.model(descriptor.model.sha256) {
                        try start(descriptor, modelPath: path, collector: collector, args: args)
                    } else {
                        pendingJob = (descriptor, collector, args)
                        core.waitForModel()
                        try socket.send(.needModel(sha256: descriptor.model.sha256))
                    }
                case .takeModel:
                    guard let message, let job = pendingJob, case .model(let sha, let files) = try message.decoded() else { continue }
                    var offset = 0
                    let contents = try files.map { f -> (String, [UInt8]) in
                        let n = WireMessage.chunkCount(f.bytes)
                        defer { offset += n }
                        let bytes = WireMessage.joined(message.data[offset..<offset + n])
                        guard bytes.count == f.bytes else {
                            throw ProtocolError.malformed(peer: message.peerName, "model file \(f.name) announced \(f.bytes) bytes; \(bytes.count) came")
                        }
                        return (f.name, bytes)
                    }
                    let path = try cache.store(sha, files: contents)
                    pendingJob = nil
                    try start(job.descriptor, modelPath: path, collector: job.collector, args: job.args)
                case .compute:
                    guard compute != nil, let message, let body = message.body else { continue }
                    // Hand the shard to the compute thread as it came: the same message, on the pair.
                    try pair.send([Header(.shard).bytes, body.array] + message.data.map(\.array))
                case .log(let level, let text):
                    logger.log(level: level, "\(text)")
                case .end(let end):
                    switch end {
                    case .done: return .done
                    case .nextJob: return .nextJob
                    case .lost: return .lost
                    case .slowDown: return .slowDown
                    case .rejoin: return .rejoin
                    }
                case .fail(let text):
                    throw ClusterError.ended(reason: text)
                }
            }
            return nil
        }

        if let end = try perform(core.start(now: now())) { return end }
        /// Malformed messages from the coordinator dropped this session.
        var dropped = 0
        while true {
            if let parentPID, getppid() != parentPID {
                logger.warning("the process that started this worker is gone; exiting")
                return .parentGone
            }
            if shouldStop?() == true {
                logger.notice("asked to stop (a signal); leaving the job to the other workers")
                return .parentGone
            }
            let ready = try poll([socket, pair, monitor], timeoutMilliseconds: 100)
            if ready[2] {
                while let frames = try monitor.receive(dontWait: true) {
                    switch Socket.connectionEvent(frames) {
                    case .linked?: _ = try perform(core.handle(.link(true), now: now()))
                    case .unlinked?: _ = try perform(core.handle(.link(false), now: now()))
                    case let failure?: _ = try perform(core.handle(.handshakeFailed(handshakeProblem(failure)), now: now()))
                    case nil: break
                    }
                }
            }
            var budget = 256
            while budget > 0, let frames = try socket.receive(dontWait: true) {
                budget -= 1
                // A malformed message (even from the pinned coordinator) costs only itself: logged,
                // counted, dropped. Another protocol version ends the worker, with one line naming both.
                do {
                    let message = try Message(frames: frames, routed: false, peerName: "coordinator \(coordinator)")
                    if let end = try perform(core.handle(.message(try message.decoded()), now: now()), message: message) { return end }
                } catch {
                    let what: String
                    switch error {
                    case ProtocolError.malformed: what = "a malformed message"
                    case is DecodingError: what = "a job whose descriptor cannot be read"
                    default: throw error
                    }
                    dropped += 1
                    if dropped <= 3 || dropped % 1000 == 0 {
                        logger.warning("dropped \(what) from the coordinator", metadata: ["why": "\(error)", "dropped": "\(dropped)"])
                    }
                }
            }
            if let end = try perform(core.afterMessages(now: now())) { return end }
            if ready[1] {
                while let frames = try pair.receive(dontWait: true) {
                    // From the compute thread: `ready` (credit, shards computed) or `error`, to pass on.
                    guard jobId != nil else { continue }
                    let m = try Message(frames: frames, routed: false, peerName: "compute thread").decoded()
                    switch m {
                    case .ready, .error: try socket.send(m)
                    default: continue
                    }
                    _ = core.handle(.sent, now: now())
                }
            }
            if let end = try perform(core.handle(.tick, now: now())) { return end }
        }
    }

    /// One line on why the handshake with the coordinator failed.
    func handshakeProblem(_ event: ConnectionEvent) -> String {
        let mine = security.keys.map { "this worker's key \($0.publicKey.fingerprint)" } ?? "this worker"
        switch event {
        case .keyRefused(let status):
            return
                "the coordinator at \(coordinator) refused \(mine) (ZAP status \(status)): add the line of its .pub file to the coordinator's --allow (then SIGHUP the coordinator)"
        case .mechanismMismatch:
            return security.keys == nil
                ? "the coordinator at \(coordinator) requires CURVE keys: give this worker --key and --coordinator-key"
                : "the coordinator at \(coordinator) does not use keys (--insecure), but this worker has --key: start both the same way"
        case .wrongServerKey:
            return
                "the process at \(coordinator) does not hold the key pinned by --coordinator-key (\(security.coordinatorKey?.fingerprint ?? "?")): it is not that coordinator"
        case .handshakeFailed where security.keys == nil:
            return "the handshake with \(coordinator) failed: it likely requires CURVE keys; give this worker --key and --coordinator-key"
        case .handshakeFailed:
            // A CURVE client learns nothing more when the server cannot decrypt its hello: the
            // server there holds another key than the one pinned.
            return
                "the handshake with \(coordinator) failed: does it hold the key pinned by --coordinator-key (\(security.coordinatorKey?.fingerprint ?? "?"))? If not, it is not that coordinator"
        case .linked, .unlinked:
            return ""
        }
    }

    private func hello(_ socket: Socket) throws {
        var host = [CChar](repeating: 0, count: 256)
        gethostname(&host, 255)
        // Not blocking: a hello that cannot be queued now is said again a second later.
        let hello = WireMessage.Hello(worker: id, pid: Int(getpid()), host: String(cBuffer: host), cachedModels: cache.hashes)
        _ = try socket.send(.hello(hello), dontWait: true)
    }
}
