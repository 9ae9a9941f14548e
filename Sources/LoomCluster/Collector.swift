import Foundation
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
    /// Seconds a written shard may wait to be made durable and acknowledged. A crash loses at
    /// most this much work, which is computed again; each commit costs an fdatasync per result file and an fsync of the journal.
    static let commitInterval = 0.05
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

    /// The job being collected (a class: it is updated on every result, and must not be copied).
    final class Active {
        let descriptor: JobDescriptor
        let coordinator: PeerID
        let writer: ResultWriter
        let journal: Journal
        var written: [Bool]
        var count: Int
        var resultBytes = 0
        var duplicates = 0
        let started = Date()

        init(descriptor: JobDescriptor, coordinator: PeerID, writer: ResultWriter, journal: Journal, written: [Bool], count: Int) {
            self.descriptor = descriptor
            self.coordinator = coordinator
            self.writer = writer
            self.journal = journal
            self.written = written
            self.count = count
        }
    }

    /// Serves jobs until one is published (returns) or fails (throws).
    ///
    /// - Parameter onBound: called with the endpoint actually bound, before any message is read.
    public func run(onBound: ((String) -> Void)? = nil) throws {
        let socket = try Socket(context, .router)
        // Every way out follows a last reply to the coordinator (`finished`, an error): let it go out.
        defer { socket.close(lingeringFor: 1000) }
        try socket.set(SocketOption.receiveHighWaterMark, 0)
        // A peer that reconnects under a routing id still held by its dead connection takes it over.
        try socket.set(SocketOption.routerHandover, 1)
        try socket.dropSilentPeers(interval: heartbeat, timeout: heartbeat * Double(liveness))
        try socket.bind(bind)
        boundEndpoint = socket.lastEndpoint
        onBound?(socket.lastEndpoint)
        logger.info("listening", metadata: ["endpoint": "\(socket.lastEndpoint)"])
        var active: Active? = nil
        var pendingAcks: [Int] = []
        var oldestAck = Date()
        var malformedMessages = 0
        while true {
            let untilCommit = Self.commitInterval - Date().timeIntervalSince(oldestAck)
            _ = try poll([socket], timeoutMilliseconds: pendingAcks.isEmpty ? 200 : max(1, Int((untilCommit * 1000).rounded(.up))))
            var budget = 512
            while budget > 0, let frames = try socket.receive(dontWait: true) {
                budget -= 1
                let message: Message
                let decoded: WireMessage
                do {
                    message = try Message(frames: frames, routed: true, peerName: "peer")
                    decoded = try message.decoded()
                } catch {
                    // A malformed message costs its sender that message, never the job.
                    malformedMessages += 1
                    logger.warning("dropped a malformed message", metadata: ["why": "\(error)"])
                    continue
                }
                guard let peer = message.peer else { continue }
                switch decoded {
                case .collect(let json):
                    let descriptor: JobDescriptor
                    do { descriptor = try JSONDecoder().decode(JobDescriptor.self, from: Data(json)) } catch {
                        logger.warning("dropped a collect message with an unreadable job descriptor", metadata: ["from": "\(message.peerName)", "why": "\(error)"])
                        continue
                    }
                    if let a = active, a.descriptor.jobId == descriptor.jobId {
                        try socket.send(.collectorReady(jobId: descriptor.jobId, resumed: a.written.indices.filter { a.written[$0] }), to: peer)
                        continue
                    }
                    do {
                        try OutputDirectory.claim(out, jobID: descriptor.jobId, spec: descriptor.spec, overwrite: overwrite)
                        let journal = try Journal(directory: out, jobID: descriptor.jobId)
                        let writer = ResultWriter(directory: out, axes: descriptor.space.axes)
                        var written = [Bool](repeating: false, count: descriptor.plan.shardCount)
                        if !journal.resumed.isEmpty {
                            guard try writer.reopen() else { throw ClusterError("\(out) has a journal but no layout.json; pass --overwrite to start again") }
                            for s in journal.resumed where s < written.count { written[s] = true }
                            logger.notice("resuming", metadata: ["complete": "\(journal.resumed.count)", "of": "\(written.count)"])
                        }
                        active = Active(descriptor: descriptor, coordinator: peer, writer: writer, journal: journal,
                                        written: written, count: written.filter { $0 }.count)
                    } catch {
                        try socket.send(.error(jobId: descriptor.jobId, shard: nil, message: "collector: \(error)"), to: peer)
                        throw error
                    }
                    logger.info("collecting", metadata: ["job": "\(descriptor.jobId.prefix(12))", "out": "\(out)"])
                    try socket.send(.collectorReady(jobId: descriptor.jobId, resumed: active!.journal.resumed), to: peer)
                case .result(let jobId, let shards):
                    guard let a = active, jobId == a.descriptor.jobId else { continue }
                    do {
                        let acks = try write(shards, frames: message.data, from: message.peerName, into: a)
                        a.resultBytes += message.byteCount
                        if pendingAcks.isEmpty && !acks.isEmpty { oldestAck = Date() }
                        pendingAcks.append(contentsOf: acks)
                    } catch let error as ResultRefused {
                        // A result that does not fit the job is the sender's fault: drop it, and the shard
                        // is computed again elsewhere (its lease runs out). The job goes on.
                        malformedMessages += 1
                        logger.warning("refused a result", metadata: ["from": "\(message.peerName)", "why": "\(error.reason)"])
                    } catch {
                        let text = "collector: a result from \(message.peerName) could not be written: \(error)"
                        try socket.send(.error(jobId: a.descriptor.jobId, shard: nil, message: text), to: a.coordinator)
                        throw ClusterError(text)
                    }
                case .finish(let f):
                    guard let a = active, peer == a.coordinator, f.jobId == a.descriptor.jobId else { continue }
                    try flushAcks(socket, a, &pendingAcks)
                    do {
                        guard a.count == a.descriptor.plan.shardCount else {
                            throw ClusterError("told to finish with \(a.count) of \(a.descriptor.plan.shardCount) shards written")
                        }
                        let outputs = try a.writer.finish()
                        var manifest = a.descriptor.manifest(outputs: outputs, workers: f.workers, elapsed: Date().timeIntervalSince(a.started))
                        manifest.transfer = .init(toWorkersBytes: f.bytesToWorkers, toCollectorBytes: a.resultBytes, examples: a.descriptor.plan.examples)
                        manifest.reliability = .init(workersLost: f.workersLost, leasesExpired: f.leasesExpired, shardsReissued: f.shardsReissued,
                                                     duplicatesDropped: a.duplicates, resumedShards: a.journal.resumed.count)
                        try OutputDirectory.publish(manifest, in: out)
                    } catch {
                        try socket.send(.finished(ok: false, message: "\(error)"), to: a.coordinator)
                        throw error
                    }
                    try socket.send(.finished(ok: true, message: ""), to: a.coordinator)
                    logger.info("published", metadata: ["out": "\(out)"])
                    return
                case .heartbeat:
                    // The reply names the job this collector holds: a restarted collector holds none.
                    _ = try? socket.send(.heartbeat(job: active?.descriptor.jobId ?? ""), to: peer, dontWait: true)
                case .end(let ok, let reason):
                    // Only the coordinator of the job may end it; before a job, any coordinator may.
                    guard active == nil || peer == active!.coordinator else { continue }
                    if !ok { throw ClusterError("the coordinator ended the job: \(reason)") }
                    return
                default:
                    malformedMessages += 1
                    logger.warning("unexpected message", metadata: ["type": "\(message.type)", "from": "\(message.peerName)"])
                }
            }
            // Acknowledge in groups, each made durable with one fdatasync per file and one journal fsync: at most
            // `Collector.commitInterval` late, or 1,024 shards at a time, and at once when the last
            // shard is in. (Groups of 64 cost an fsync every millisecond or so when shards are tiny.)
            if let a = active, !pendingAcks.isEmpty,
               pendingAcks.count >= 1024 || a.count == a.descriptor.plan.shardCount || Date().timeIntervalSince(oldestAck) >= Self.commitInterval {
                try flushAcks(socket, a, &pendingAcks)
            }
        }
    }

    /// Makes the pending shards durable (rows synced, then journaled), then acknowledges them.
    private func flushAcks(_ socket: Socket, _ a: Active, _ acks: inout [Int]) throws {
        guard !acks.isEmpty else { return }
        try a.writer.sync()
        try a.journal.record(acks)
        _ = try? socket.send(.ack(jobId: a.descriptor.jobId, shards: acks), to: a.coordinator, dontWait: true)
        acks.removeAll(keepingCapacity: true)
    }

    /// A result that does not fit the job: the sender is at fault, not the collector.
    struct ResultRefused: Error { let reason: String }

    /// Writes one result message (one or more shards); returns the shards to acknowledge
    /// (written now, or duplicates already journaled). Everything is checked before the first
    /// byte is written: shard numbers, leaf count, frame sizes.
    private func write(_ shards: [WireMessage.ShardLayout], frames: [Frame], from peer: String, into a: Active) throws -> [Int] {
        let plan = a.descriptor.plan
        var frame = 0
        var acks: [Int] = []
        for s in shards {
            guard s.shard < plan.shardCount else { throw ResultRefused(reason: "shard \(s.shard) is not in the job (\(plan.shardCount) shards)") }
            let leaves = s.leaves.enumerated().map { (k, leaf) in (index: leaf.index, exampleShape: leaf.shape, bytes: frames[frame + k].bytes) }
            frame += s.leaves.count
            guard !a.written[s.shard] else {   // a duplicate (a re-issued or speculative copy): acknowledge again, write nothing
                a.duplicates += 1
                if a.journal.recorded.contains(s.shard) { acks.append(s.shard) }
                continue
            }
            let range = plan.range(of: s.shard)
            do { try a.writer.write(raw: leaves, at: range.lowerBound, count: range.count) } catch let e as IndexSpaceError {
                throw ResultRefused(reason: "\(plan.describe(s.shard)): \(e)")
            }
            a.written[s.shard] = true
            a.count += 1
            acks.append(s.shard)
        }
        return acks
    }
}
