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
        while true {
            let untilCommit = Self.commitInterval - Date().timeIntervalSince(oldestAck)
            _ = try poll([socket], timeoutMilliseconds: pendingAcks.isEmpty ? 200 : max(1, Int((untilCommit * 1000).rounded(.up))))
            var budget = 512
            while budget > 0, let frames = try socket.receive(dontWait: true) {
                budget -= 1
                let message: Message
                do { message = try Message(frames: frames, routed: true, peerName: "peer") } catch {
                    logger.warning("dropped a message", metadata: ["why": "\(error)"])
                    continue
                }
                switch message.type {
                case .collect:
                    var r = try message.reader()
                    let json = try r.blob()
                    let descriptor = try JSONDecoder().decode(JobDescriptor.self, from: Data(json))
                    if let a = active, a.descriptor.jobId == descriptor.jobId {
                        try socket.send(.collectorReady, to: message.peer, body: wire { $0.string(descriptor.jobId); $0.ints(a.written.indices.filter { a.written[$0] }) })
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
                        active = Active(descriptor: descriptor, coordinator: message.peer!, writer: writer, journal: journal,
                                        written: written, count: written.filter { $0 }.count)
                    } catch {
                        try socket.send(.error, to: message.peer, body: wire { $0.string(descriptor.jobId); $0.int(-1); $0.string("collector: \(error)") })
                        throw error
                    }
                    logger.info("collecting", metadata: ["job": "\(descriptor.jobId.prefix(12))", "out": "\(out)"])
                    try socket.send(.collectorReady, to: message.peer, body: wire { $0.string(descriptor.jobId); $0.ints(active!.journal.resumed) })
                case .result:
                    guard let a = active else { continue }
                    do {
                        let shards = try write(message, into: a)
                        if pendingAcks.isEmpty && !shards.isEmpty { oldestAck = Date() }
                        pendingAcks.append(contentsOf: shards)
                    } catch {
                        let text = "collector: a result from \(message.peerName) could not be written: \(error)"
                        try socket.send(.error, to: a.coordinator, body: wire { $0.string(a.descriptor.jobId); $0.int(-1); $0.string(text) })
                        throw ClusterError(text)
                    }
                case .finish:
                    guard let a = active else { continue }
                    try flushAcks(socket, a, &pendingAcks)
                    do {
                        guard a.count == a.descriptor.plan.shardCount else {
                            throw ClusterError("told to finish with \(a.count) of \(a.descriptor.plan.shardCount) shards written")
                        }
                        let outputs = try a.writer.finish()
                        var r = try message.reader()
                        _ = try r.string()
                        let workers = try r.int()
                        let toWorkers = try r.int()
                        let lost = try r.int(), expired = try r.int(), reissued = try r.int()
                        var manifest = a.descriptor.manifest(outputs: outputs, workers: workers, elapsed: Date().timeIntervalSince(a.started))
                        manifest.transfer = .init(toWorkersBytes: toWorkers, toCollectorBytes: a.resultBytes, examples: a.descriptor.plan.examples)
                        manifest.reliability = .init(workersLost: lost, leasesExpired: expired, shardsReissued: reissued,
                                                     duplicatesDropped: a.duplicates, resumedShards: a.journal.resumed.count)
                        try OutputDirectory.publish(manifest, in: out)
                    } catch {
                        try socket.send(.finished, to: a.coordinator, body: wire { $0.u8(0); $0.string("\(error)") })
                        throw error
                    }
                    try socket.send(.finished, to: a.coordinator, body: wire { $0.u8(1); $0.string("") })
                    logger.info("published", metadata: ["out": "\(out)"])
                    return
                case .heartbeat:
                    // The reply names the job this collector holds: a restarted collector holds none.
                    if let peer = message.peer { _ = try? socket.send(.heartbeat, to: peer, body: wire { $0.string(active?.descriptor.jobId ?? "") }) }
                case .end:
                    var r = try message.reader()
                    let ok = try r.u8() == 1
                    let reason = try r.string()
                    if !ok { throw ClusterError("the coordinator ended the job: \(reason)") }
                    return
                default:
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
        _ = try? socket.send(.ack, to: a.coordinator, body: wire { $0.string(a.descriptor.jobId); $0.ints(acks) })
        acks.removeAll(keepingCapacity: true)
    }

    /// Writes one result message (one or more shards); returns the shards to acknowledge
    /// (written now, or duplicates already journaled).
    private func write(_ message: Message, into a: Active) throws -> [Int] {
        var r = try message.reader()
        let jobId = try r.string()
        guard jobId == a.descriptor.jobId else { return [] }
        let plan = a.descriptor.plan
        let shardCount = Int(try r.u32())
        var frame = 0
        var acks: [Int] = []
        for _ in 0..<shardCount {
            let shard = try r.int()
            guard shard >= 0 && shard < plan.shardCount else { throw ProtocolError.malformed(peer: message.peerName, "shard \(shard) is not in the job") }
            let leafCount = Int(try r.u32())
            guard leafCount >= 0, frame + leafCount <= message.data.count else {
                throw ProtocolError.malformed(peer: message.peerName, "\(leafCount) more outputs announced, \(message.data.count - frame) frames left")
            }
            var leaves: [(index: [Int], exampleShape: [Int], bytes: UnsafeRawBufferPointer)] = []
            for _ in 0..<leafCount {
                let index = try r.ints()
                let shape = try r.ints()
                leaves.append((index, shape, message.data[frame].bytes))
                frame += 1
            }
            guard !a.written[shard] else {   // a duplicate (a re-issued or speculative copy): acknowledge again, write nothing
                a.duplicates += 1
                if a.journal.recorded.contains(shard) { acks.append(shard) }
                continue
            }
            let range = plan.range(of: shard)
            try a.writer.write(raw: leaves, at: range.lowerBound, count: range.count)
            a.written[shard] = true
            a.count += 1
            acks.append(shard)
        }
        guard frame == message.data.count else {
            throw ProtocolError.malformed(peer: message.peerName, "\(message.data.count) result frames sent, \(frame) announced")
        }
        a.resultBytes += message.byteCount
        return acks
    }
}

/// Builds a body with a closure.
func wire(_ build: (inout WireWriter) -> Void) -> WireWriter {
    var w = WireWriter()
    build(&w)
    return w
}
