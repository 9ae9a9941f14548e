import FoundationEssentials
import Logging
import LoomProduct
import LoomTensor
import ZeroMQ

/// Reassembles a job's results: writes each shard's rows at their place in the
/// result files, acknowledges it to the coordinator, and publishes the manifest when told.
///
/// It binds one ROUTER socket: workers send results to it and the coordinator connects to it
/// (`collect`, `finish`, `end`). Shards may arrive in any order; a shard that arrives twice is
/// written once. The run loop owns the socket and blocks its thread.
public final class Collector {
    /// Where it listens.
    public let bind: String
    /// The results folder.
    public let out: String
    /// Whether a different job's results in `out` may be replaced.
    public let overwrite: Bool
    let context: Context
    var logger: Logger
    /// Commit timing and batching: the core's settings.
    public var settings = CollectorCore.Settings()
    /// CURVE keys, or none. With keys, only `coordinatorKey` may send `collect`, `finish` and `end`.
    public var security = Security.none
    /// Called on the collector's thread at least every 200 ms (SIGHUP's reload of `--allow`).
    public var tick: (() -> Void)? = nil
    /// Asked at least every 200 ms: true makes ``run(onBound:)`` return at once, its journal as of
    /// its last commit (shards written since are computed again on resume). For SIGINT and SIGTERM.
    public var shouldStop: (() -> Bool)? = nil
    /// Seconds between libzmq's pings to each peer, and the silences (in pings) after which a
    /// peer's connection is dropped: a worker cut off by a partition then reconnects as soon as
    /// the network is back, instead of keeping a dead connection for minutes.
    public var heartbeat: Double = 1
    public var liveness: Int = 3
    /// The endpoint actually bound (with the port chosen for `:*`), once bound.
    public private(set) var boundEndpoint: String? = nil

    public init(context: Context, bind: String, out: String, overwrite: Bool, logger: Logger) {
        self.context = context
        self.bind = bind
        self.out = out
        self.overwrite = overwrite
        self.logger = logger
        self.logger[metadataKey: "role"] = "collector"
    }

    /// The job being collected: its files.
    struct Active {
        let descriptor: JobDescriptor
        let sink: ResultSink
        let started = Date()
    }

    /// Serves jobs until one is published (returns) or fails (throws).
    ///
    /// The shell around ``CollectorCore``: it owns the socket, the files and the clock, turns
    /// messages into events and carries out the core's directives.
    ///
    /// - Parameter onBound: called with the endpoint actually bound, before any message is read.
    public func run(onBound: ((String) -> Void)? = nil) throws {
        let socket = try Socket(context, .router)
        // A frame is one output of one shard; a larger one closes the connection before libzmq allocates it.
        try socket.set(SocketOption.maxMessageSize, int64: Int64(WireMessage.maxResultFrame))
        // Every way out follows a last reply to the coordinator (`finished`, an error): let it go out.
        defer { socket.close(lingeringFor: 1000) }
        try socket.set(SocketOption.receiveHighWaterMark, 0)
        // A peer that reconnects under a routing id still held by its dead connection takes it over.
        try socket.set(SocketOption.routerHandover, 1)
        try socket.dropSilentPeers(interval: heartbeat, timeout: heartbeat * Double(liveness))
        try security.serve(socket)
        // With keys, handshakes that fail before the ZAP handler is asked (a coordinator or worker
        // pinning another collector key, a peer without keys) are logged too.
        let monitor = security.keys != nil ? try socket.monitorConnections(in: context) : nil
        defer { if let monitor { socket.stopMonitoring(); monitor.close() } }
        var handshakeWarnings = HandshakeWarnings(role: "collector")
        try socket.bind(bind)
        boundEndpoint = socket.lastEndpoint
        onBound?(socket.lastEndpoint)
        logger.info("listening", metadata: ["endpoint": "\(socket.lastEndpoint)"])
        var core = CollectorCore(settings: settings)
        var asked: JobDescriptor? = nil
        var active: Active? = nil
        /// The result message being handled, while the core decides what of it to write.
        var inHand: (peer: PeerID, message: Message, shards: [WireMessage.ShardLayout])? = nil
        let clock = ContinuousClock()
        let origin = clock.now
        func now() -> Double { let d = clock.now - origin; return Double(d.components.seconds) + Double(d.components.attoseconds) * 1e-18 }

        /// Carries out directives and what follows from them; returns true once the collector is done.
        func perform(_ first: [CollectorCore.Directive]) throws -> Bool {
            var queue = first[...]
            while let d = queue.popFirst() {
                switch d {
                case .send(let m, let peer):
                    _ = try? socket.send(m, to: peer, dontWait: true)
                case .claim:
                    guard let descriptor = asked else { continue }
                    do {
                        let sink = try ResultSink(
                            directory: out, jobID: descriptor.jobId, spec: descriptor.spec, plan: descriptor.plan,
                            axes: descriptor.space.axes, overwrite: overwrite)
                        if !sink.rejected.isEmpty {
                            logger.warning(
                                "journaled shards failed their checksum; computing them again",
                                metadata: ["shards": "\(sink.rejected.count)", "first": "\(descriptor.plan.describe(sink.rejected[0]))"])
                        }
                        if sink.journal.discardedLegacy { logger.notice("a journal from an older Loom, without checksums: starting the job over") }
                        active = Active(descriptor: descriptor, sink: sink)
                        queue += core.handle(.claimed(resumed: sink.resumed), now: now())
                    } catch {
                        queue += core.handle(.claimFailed("\(error)"), now: now())
                    }
                case .write(let shards):
                    guard let a = active, let r = inHand else { continue }
                    let written: [Int], refused: String?
                    do { (written, refused) = try write(shards, of: r.shards, frames: r.message.data, from: r.message.peerName, into: a) } catch {
                        // The disk, not the peer: the job cannot go on here.
                        if let c = core.coordinator {
                            _ = try? socket.send(.error(jobId: a.descriptor.jobId, shard: nil, message: "\(error)"), to: c, dontWait: true)
                        }
                        throw error
                    }
                    queue += core.handle(.written(written, refused: refused, from: r.peer, bytes: r.message.byteCount), now: now())
                case .commit(let shards):
                    guard let a = active else { continue }
                    try a.sink.commit(shards)
                case .revoke(let shards):
                    guard let a = active else { continue }
                    try a.sink.revoke(shards)
                case .publish(let f):
                    guard let a = active else { continue }
                    do {
                        try a.sink.publish { outputs in
                            var manifest = a.descriptor.manifest(outputs: outputs, workers: f.workers, elapsed: Date().timeIntervalSince(a.started))
                            manifest.transfer = .init(
                                toWorkersBytes: f.bytesToWorkers, toCollectorBytes: core.resultBytes, examples: a.descriptor.plan.examples)
                            manifest.reliability = .init(
                                workersLost: f.workersLost, leasesExpired: f.leasesExpired, shardsReissued: f.shardsReissued,
                                duplicatesDropped: core.duplicates, resumedShards: a.sink.resumed.count)
                            manifest.verification = f.verification
                            return manifest
                        }
                        queue += core.handle(.published, now: now())
                    } catch {
                        queue += core.handle(.publishFailed("\(error)"), now: now())
                    }
                case .log(let level, let text, let metadata):
                    logger.log(level: level, "\(text)", metadata: metadata)
                case .exit(let failure):
                    if let failure { throw ClusterError.collectorFailed(reason: failure) }
                    return true
                }
            }
            return false
        }

        while true {
            let wait = core.untilCommit(now: now()).map { max(1, Int(($0 * 1000).rounded(.up))) } ?? 200
            _ = try poll([socket] + (monitor.map { [$0] } ?? []), timeoutMilliseconds: wait)
            if let monitor {
                while let frames = try monitor.receive(dontWait: true) {
                    if let m = handshakeWarnings.warning(for: frames, now: now()) {
                        logger.warning("a connection failed its CURVE handshake", metadata: m.mapValues { "\($0)" })
                    }
                }
            }
            var budget = 512
            while budget > 0, let frames = try socket.receive(dontWait: true) {
                budget -= 1
                let message: Message
                do { message = try Message(frames: frames, routed: true, peerName: "peer") } catch {
                    logger.warning("dropped a message", metadata: ["why": "\(error)"])
                    // A peer of another protocol version is told, in this one: it stops with one line naming both.
                    if case ProtocolError.version = error, let id = frames.first {
                        _ = try? socket.send(.error(jobId: "", shard: nil, message: "\(error)"), to: PeerID(id.array), dontWait: true)
                    }
                    continue
                }
                guard let peer = message.peer else { continue }
                let event: CollectorCore.Event
                do {
                    let decoded = try message.decoded()
                    // With keys, what only a coordinator sends counts only from the coordinator's key.
                    let fromCoordinator = security.keys == nil || message.userKey == security.coordinatorKey
                    switch decoded {
                    case .collect where !fromCoordinator, .finish where !fromCoordinator, .end where !fromCoordinator,
                        .redo where !fromCoordinator:
                        event = .refused(peer, "\(decoded.type) from key \(message.userKey?.fingerprint ?? "none"), not the coordinator's")
                    case .collect(let json, let verify, let version):
                        do {
                            let descriptor = try JSONDecoder().decode(JobDescriptor.self, from: Data(json))
                            if active == nil { asked = descriptor }
                            event = .collect(
                                peer, jobId: descriptor.jobId, shardCount: descriptor.plan.shardCount, verify: verify, loomVersion: version)
                        } catch {
                            event = .refused(peer, "a job descriptor that cannot be read: \(error)")
                        }
                    case .result(let jobId, let worker, let shards):
                        inHand = (peer, message, shards)
                        let digests = core.isVerifying ? active.map { Self.digests(of: shards, frames: message.data, job: $0.descriptor) } ?? [] : []
                        event = .result(peer, jobId: jobId, worker: worker, shards: shards.map(\.shard), digests: digests)
                    case .redo(let jobId, let shards, let quarantined):
                        event = .redo(peer, jobId: jobId, shards: shards, quarantined: quarantined)
                    case .finish(let f): event = .finish(peer, f)
                    case .heartbeat: event = .heartbeat(peer)
                    case .end(let ok, let reason): event = .end(peer, ok: ok, reason: reason)
                    case let other: event = .refused(peer, "\(other.type) is not a message a collector takes")
                    }
                } catch {
                    event = .refused(peer, "\(error)")
                }
                defer { inHand = nil }
                if try perform(core.handle(event, now: now())) { return }
            }
            tick?()
            if shouldStop?() == true { return }
            if try perform(core.handle(.tick, now: now())) { return }
        }
    }

    /// Each shard's digest as it arrived (``ResultWriter/digest(leaves:rows:job:)``); empty for a
    /// shard that is not in the job (the core refuses it).
    static func digests(of layouts: [WireMessage.ShardLayout], frames: [Frame], job: JobDescriptor) -> [[UInt8]] {
        var start = 0
        return layouts.map { layout in
            defer { start += layout.leaves.count }
            guard layout.shard < job.plan.shardCount, start + layout.leaves.count <= frames.count else { return [] }
            let leaves = (start..<start + layout.leaves.count).map { frames[$0].bytes }
            return ResultWriter.digest(leaves: leaves, rows: job.plan.range(of: layout.shard), job: job.jobId)
        }
    }

    /// Writes the given shards of a result message; returns those written and, if the message
    /// does not fit the job (a shard's leaves or sizes), why. I/O failures throw: they end the job.
    private func write(
        _ shards: [Int], of layouts: [WireMessage.ShardLayout], frames: [Frame], from peer: String,
        into a: Active
    ) throws -> (written: [Int], refused: String?) {
        let plan = a.descriptor.plan
        // One pass over the message: each shard asked for is written from its first copy in it.
        var wanted = Set(shards)
        var written: [Int] = []
        var start = 0
        for layout in layouts {
            defer { start += layout.leaves.count }
            guard wanted.remove(layout.shard) != nil else { continue }
            let s = layout.shard
            let leaves = layout.leaves.enumerated().map { (k, leaf) in (index: leaf.index, exampleShape: leaf.shape, bytes: frames[start + k].bytes) }
            let range = plan.range(of: s)
            do { try a.sink.writer.write(raw: leaves, at: range.lowerBound, count: range.count) } catch let e as IndexSpaceError {
                return (written, "\(plan.describe(s)) from \(peer): \(e)")
            } catch {
                throw ClusterError.resultUnwritable(peer: "\(peer)", reason: "\(error)")
            }
            written.append(s)
        }
        return (written, nil)
    }
}
