import FoundationEssentials
import LoomFunctions
import LoomONNX
import LoomProduct
import LoomSystem
import LoomTensor
import Synchronization
import ZeroMQ

#if canImport(Glibc)
    import Glibc
#endif

/// The worker's compute thread: runs shards in order, sends results to the collector, and tells
/// the main thread how much credit to announce.
final class ComputeThread: @unchecked Sendable {
    let worker: Worker
    let descriptor: JobDescriptor
    let model: ONNXModel
    let function: any SequenceFunction
    let args: [Tensor<Float>]
    let collector: String
    /// The collector's CURVE public key, from the job (nil without keys).
    let collectorKey: CurveKey?
    let pairEndpoint: String
    /// Unique to this thread: a collector that still holds a dead connection under an id must not
    /// take a new connection for that one (libzmq's ROUTER refuses the newcomer, silently).
    let routingID: String
    /// Seconds without a connection to the collector after which the thread says so (then every minute).
    let unreachableWarning: Double = 5
    private let finished = ConditionLock()
    private var isDone = false
    /// Set by `stop`: the thread drops the shards still queued for it and returns.
    private let cancelled = Atomic<Bool>(false)
    private var startError: (any Error)? = nil
    private var started = false
    // Credit accounting (touched by the compute thread only).
    private var outstanding = 0
    private var shardSeconds: Double? = nil
    private var unannounced = 0

    init(
        worker: Worker, descriptor: JobDescriptor, model: ONNXModel, function: any SequenceFunction, args: [Tensor<Float>],
        collector: String, collectorKey: CurveKey?, pairEndpoint: String, routingID: String
    ) {
        self.worker = worker
        self.descriptor = descriptor
        self.model = model
        self.function = function
        self.args = args
        self.collector = collector
        self.collectorKey = collectorKey
        self.pairEndpoint = pairEndpoint
        self.routingID = routingID
        self.outstanding = worker.credit
    }

    /// Starts the thread and waits until its sockets are connected.
    func start() throws {
        try OSThread.start(name: "loom-compute") { [self] in
            do { try loop() } catch {
                finished.lock(); startError = startError ?? error; finished.unlock()
            }
            finished.lock(); isDone = true; started = true; finished.broadcast(); finished.unlock()
        }
        finished.lock()
        while !started { finished.wait() }
        let e = startError
        finished.unlock()
        if let e { throw e }
    }

    /// Asks the thread to stop after the shard it is computing, and waits for it.
    ///
    /// The shards still queued for the thread are dropped (the coordinator has re-queued them
    /// or will), and what the thread sends on the pair meanwhile is drained and discarded, so
    /// it can never block on a full pair while this thread waits for it.
    func stop(_ pair: Socket) {
        cancelled.store(true, ordering: .sequentiallyConsistent)
        _ = try? pair.send(.end(ok: false, reason: "stop"), dontWait: true)
        let deadline = Date().addingTimeInterval(30)
        finished.lock()
        while !isDone && Date() < deadline {
            finished.unlock()
            while (try? pair.receive(dontWait: true)) != nil {}
            finished.lock()
            if !isDone { finished.wait(seconds: 0.01) }
        }
        finished.unlock()
    }

    private func loop() throws {
        let pair = try Socket(worker.context, .pair)
        defer { pair.close() }
        try pair.connect(pairEndpoint)
        let out = try Socket(worker.context, .dealer)
        try out.set(SocketOption.maxMessageSize, int64: Int64(WireMessage.maxControlFrame))
        defer { out.close() }
        try out.set(SocketOption.routingID, bytes: Array(routingID.utf8))
        try worker.security.connect(out, to: collectorKey, what: "collector")
        try out.dropSilentPeers(interval: worker.heartbeat, timeout: worker.heartbeat * Double(worker.liveness))
        let monitor = try out.monitorConnections(in: worker.context)
        defer { out.stopMonitoring(); monitor.close() }
        try out.connect(collector)
        link = CollectorLink(endpoint: collector, monitor: monitor, since: Date(), warnAfter: unreachableWarning)
        finished.lock(); started = true; finished.broadcast(); finished.unlock()
        do { try serve(pair: pair, out: out) } catch {
            // Tell the main thread, which tells the coordinator: a worker that cannot compute must not hold shards.
            _ = try? pair.send(.error(jobId: descriptor.jobId, shard: nil, message: "\(worker.id): \(error)"))
            throw error
        }
    }

    /// The state of the connection to the collector, for saying when it cannot be reached.
    struct CollectorLink {
        let endpoint: String
        let monitor: Socket
        var linked = false
        /// Since when it has been unlinked.
        var since: Date
        var warnAfter: Double
    }
    private var link: CollectorLink? = nil

    /// Reads the connection monitor; warns (naming the endpoint) when the collector has been out of
    /// reach for ``unreachableWarning`` seconds, then every minute.
    private func watchCollector() throws {
        guard var l = link else { return }
        defer { link = l }
        while let frames = try l.monitor.receive(dontWait: true) {
            switch Socket.connectionEvent(frames) {
            case .linked?:
                if l.linked == false && l.warnAfter > unreachableWarning {
                    worker.logger.notice("reached the collector", metadata: ["endpoint": "\(l.endpoint)"])
                }
                l.linked = true
                l.warnAfter = unreachableWarning
            case .unlinked?:
                l.linked = false
                l.since = Date()
            case .keyRefused?, .mechanismMismatch?, .wrongServerKey?, .handshakeFailed?:
                worker.logger.error(
                    "the collector at \(l.endpoint) refused this worker's connection (CURVE handshake): is this worker's key in the collector's --allow?")
            case nil: break
            }
        }
        let out = Date().timeIntervalSince(l.since)
        if !l.linked && out >= l.warnAfter {
            l.warnAfter = out + 60
            worker.logger.warning(
                "cannot reach the collector at \(l.endpoint) for \(Int(out)) s: is it running, and reachable from this host? Results wait until it is")
        }
    }

    private func serve(pair: Socket, out: Socket) throws {
        while true {
            if try poll([pair], timeoutMilliseconds: 500)[0] == false {
                try watchCollector()
                continue
            }
            try watchCollector()
            guard let frames = try pair.receive(dontWait: true) else { continue }
            if cancelled.load(ordering: .sequentiallyConsistent) { return }
            let message = try Message(frames: frames, routed: false, peerName: "coordinator")
            guard case .shard(let jobId, let shards) = try message.decoded() else { return } // `end`: stop
            guard jobId == descriptor.jobId else { continue }
            // Quick shards of one message go back to the collector together: a result message holds
            // the shards computed within `ResultBatch.maxDelay` of the first one's start (and at most
            // `maxBytes`); then the main thread is told they are computed, which is what earns the
            // worker its next shards. A shard slower than that goes back on its own as soon as it is
            // done, so the next shards are on their way while the ones in hand compute.
            var batch = ResultBatch(jobId: descriptor.jobId, worker: worker.id)
            for (k, s) in shards.enumerated() {
                if cancelled.load(ordering: .sequentiallyConsistent) { return }
                try compute(shard: s.shard, distinct: s.rows, payload: message.data[k].bytes, into: &batch, out: out, pair: pair)
                if batch.isDue { try flush(&batch, out: out, pair: pair) }
            }
            try flush(&batch, out: out, pair: pair)
        }
    }

    /// Sends the batch's results to the collector, then reports its shards computed (with any credit to announce).
    private func flush(_ batch: inout ResultBatch, out: Socket, pair: Socket) throws {
        guard !batch.shards.isEmpty else { return }
        // Never block on the collector: while it cannot take the message (unreachable, its queue
        // full), keep watching the connection and stop at once if the worker drops the job.
        while try !out.waitWritable(timeoutMilliseconds: 200) {
            if cancelled.load(ordering: .sequentiallyConsistent) {
                for frame in batch.frames { frame.discard() }
                batch = ResultBatch(jobId: descriptor.jobId, worker: worker.id)
                return
            }
            try watchCollector()
        }
        try out.send(batch.message, data: batch.frames)
        // Report the batch's shards computed at once (with any credit), so that a crash is charged
        // to the shard being computed, not to one whose result went out a moment before.
        let report = WireMessage.ready(jobId: descriptor.jobId, credit: batch.grant, computed: batch.shards)
        batch = ResultBatch(jobId: descriptor.jobId, worker: worker.id)
        try pair.send(report)
    }

    private func compute(shard: Int, distinct: [Int], payload: UnsafeRawBufferPointer, into results: inout ResultBatch, out: Socket, pair: Socket) throws {
        let plan = descriptor.plan
        guard shard >= 0 && shard < plan.shardCount else { throw ProtocolError.malformed(peer: "coordinator", "shard \(shard) is not in the job") }
        let range = plan.range(of: shard)
        let expected = descriptor.space.distinctSequences(for: range)
        guard distinct == expected else {
            func brief(_ rows: [Int]) -> String { rows.count <= 8 ? "\(rows)" : "\(rows.count) rows from \(rows.prefix(4))" }
            throw ProtocolError.malformed(peer: "coordinator", "\(plan.describe(shard)) carries X rows \(brief(distinct)), expected \(brief(expected))")
        }
        if worker.crashShard == shard {
            // Test-only fault injection: crash partway through the shard, as a real poison shard does
            // (an instant abort would also drop the previous shard's result and report, still queued
            // in libzmq, and that shard would be blamed for the crash instead).
            usleep(100_000)
            abort()
        }
        if let delay = worker.shardDelay { usleep(delay) }
        do {
            let x = try XCodec.decode(payload, count: distinct.count, rowShape: descriptor.xRowShape, as: descriptor.xEncoding, peer: "coordinator")
            let began = Date()
            // The shard's batches, each built exactly as the in-process executor builds it: from
            // its own distinct sequences, gathered from the shard's.
            var position: [Int: Int] = [:]
            for (p, s) in distinct.enumerated() where position[s] == nil { position[s] = p }
            var outputs: [OutputTree] = []
            for sub in plan.batches(of: shard) {
                let (subDistinct, subRows) = descriptor.space.sequenceRows(for: sub)
                let subX = subDistinct == distinct ? x : x.gatherRows(subDistinct.map { position[$0]! })
                var batch = descriptor.space.batch(for: sub, distinctX: subX, rows: subRows, args: args)
                if !descriptor.spec.shareRows { batch = batch.unshared() }
                outputs.append(try function.apply(model: model, batch: batch))
            }
            try results.add(shard: shard, batches: outputs.map(\.leaves), began: began, flipBit: worker.flipBitShard == shard)
            results.grant += replenish(after: Date().timeIntervalSince(began))
        } catch let e as ProtocolError {
            throw e
        } catch {
            // What was computed before this shard goes out first, so that only this shard is reported failed.
            try flush(&results, out: out, pair: pair)
            let text = "\(plan.describe(shard)) failed on \(worker.id): \(error)"
            worker.logger.error("shard failed", metadata: ["shard": "\(shard)", "error": "\(error)"])
            try pair.send(.error(jobId: descriptor.jobId, shard: shard, message: text))
        }
    }

    /// The credit to announce after a shard that took `seconds`: the one it used, plus more when
    /// shards are so quick that a few cannot cover the ~5 ms a message round trip can take.
    func replenish(after seconds: Double) -> Int {
        let smoothed = shardSeconds.map { 0.8 * $0 + 0.2 * seconds } ?? seconds
        shardSeconds = smoothed
        let wanted = min(worker.maxCredit, max(worker.credit, Int((0.005 / max(smoothed, 1e-6)).rounded(.up))))
        outstanding -= 1
        unannounced += max(0, wanted - outstanding - unannounced)
        // With a large credit, announce it a quarter at a time: fewer messages, and at least
        // three quarters of the credit stays in hand.
        guard unannounced >= max(1, wanted / 4) else { return 0 }
        let grant = unannounced
        unannounced = 0
        outstanding += grant
        return grant
    }
}

/// Results of consecutive shards, sent to the collector as one `result` message.
struct ResultBatch {
    /// A batch is sent once it holds this many bytes of results, even mid-message.
    static let maxBytes = 8 << 20
    /// A batch is sent once this long has passed since its first shard began, even mid-message.
    static let maxDelay = 0.002
    /// When the computation of its first shard began.
    var since: Date? = nil
    let jobId: String
    var shards: [Int] = []
    var frames: [OutgoingFrame] = []
    /// Per shard: its leaves' index paths and per-example shapes.
    var layouts: [[(index: [Int], shape: [Int])]] = []
    var bytes = 0
    /// Credit to announce once the batch is sent.
    var grant = 0

    /// The worker's name, as its `hello` gave it.
    let worker: String

    init(jobId: String, worker: String) {
        self.jobId = jobId
        self.worker = worker
    }

    /// Whether the batch should go now rather than wait for more shards.
    var isDue: Bool { bytes >= Self.maxBytes || since.map { Date().timeIntervalSince($0) >= Self.maxDelay } ?? false }

    /// Adds a shard's results: its batches' output leaves, concatenated leaf by leaf along the examples.
    ///
    /// - Parameter began: when the shard's computation began. The delay counts from there, not from
    ///   the moment its results are added: counted from the end, a shard slower than `maxDelay`
    ///   would wait for the next one, and the worker would report its shards (and ask for more)
    ///   only once per message, running dry at every message's end.
    /// - Parameter flipBit: flip the lowest bit of the shard's first byte (a test's lying worker).
    mutating func add(shard: Int, batches: [[(index: [Int], tensor: Tensor<Float>)]], began: Date = Date(), flipBit: Bool = false) throws {
        guard let first = batches.first else { return }
        if since == nil { since = began }
        shards.append(shard)
        layouts.append(first.map { ($0.index, Array($0.tensor.shape.dropFirst())) })
        for (k, leaf) in first.enumerated() {
            var count = 0
            for b in batches {
                guard b.count == first.count, b[k].index == leaf.index, b[k].tensor.shape.dropFirst() == leaf.tensor.shape.dropFirst() else {
                    throw ClusterError.inconsistentOutputs(shard: shard)
                }
                count += b[k].tensor.count
            }
            let buffer = OutgoingFrame.allocate(count * 4)
            var offset = 0
            for b in batches where b[k].tensor.count > 0 {
                b[k].tensor.storage.withUnsafeBytes { buffer.baseAddress!.advanced(by: offset).copyMemory(from: $0.baseAddress!, byteCount: $0.count) }
                offset += b[k].tensor.count * 4
            }
            if flipBit && k == 0 && count > 0 { buffer.baseAddress!.storeBytes(of: buffer.load(as: UInt8.self) ^ 1, as: UInt8.self) }
            frames.append(.owned(buffer))
            bytes += count * 4
        }
    }

    /// The `result` message for the batch (its data frames are ``frames``).
    var message: WireMessage {
        .result(
            jobId: jobId, worker: worker,
            shards: zip(shards, layouts).map { shard, layout in
                WireMessage.ShardLayout(shard: shard, leaves: layout.map { .init(index: $0.index, shape: $0.shape) })
            })
    }
}
