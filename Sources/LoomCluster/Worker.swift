import Foundation
import Logging
import LoomFunctions
import LoomONNX
import LoomProduct
import LoomTensor
import ZeroMQ

/// A worker process: joins a coordinator, receives the job and the model, computes shards and
/// sends their outputs to the collector. Job-agnostic: everything comes from the coordinator.
public final class Worker {
    /// The coordinator's endpoint.
    public let coordinator: String
    /// Serve the next job of the same coordinator instead of exiting after one.
    public let keepAlive: Bool
    /// Shards it may hold at once, at least: one computing, one arriving.
    public let credit: Int
    /// The most shards it may hold when shards are so quick that `credit` cannot cover the round trip.
    public let maxCredit: Int
    /// The credit it has granted and not yet used (shards held plus room announced).
    private var outstanding = 0
    /// Seconds per shard, smoothed.
    private var shardSeconds: Double? = nil
    /// Credit earned back and not yet announced (announced in groups when credit is large).
    private var unannounced = 0
    /// The process that started this worker (`loom run --workers N`); the worker exits if it goes away.
    public var parentPID: pid_t? = nil
    let context: Context
    let cache: ModelCache
    let id: String
    var logger: Logger

    public init(context: Context, coordinator: String, keepAlive: Bool = false, credit: Int = 2, maxCredit: Int = 64,
                cache: ModelCache = ModelCache(), logger: Logger) {
        self.context = context
        self.coordinator = coordinator
        self.keepAlive = keepAlive
        self.credit = max(1, credit)
        self.maxCredit = max(self.credit, maxCredit)
        self.cache = cache
        var host = [CChar](repeating: 0, count: 256)
        gethostname(&host, 255)
        self.id = "worker-\(String(cString: host))-\(getpid())-\(UInt32.random(in: 0...0xFFFF))"
        self.logger = logger
        self.logger[metadataKey: "role"] = "worker"
        self.logger[metadataKey: "worker"] = "\(id)"
    }

    /// A job being served.
    struct Active {
        let descriptor: JobDescriptor
        let model: ONNXModel
        let function: any SequenceFunction
        let args: [Tensor<Float>]
        let collector: Socket
    }

    /// Serves until the coordinator ends the job (or, with keep-alive, forever). Throws on a failure it reported.
    public func run() throws {
        let socket = try Socket(context, .dealer)
        defer { socket.close() }
        try socket.set(SocketOption.routingID, bytes: Array(id.utf8))
        try socket.connect(coordinator)
        try hello(socket)
        var lastHello = Date()
        var active: Active? = nil
        var pendingJob: (descriptor: JobDescriptor, collector: String, args: [Tensor<Float>])? = nil
        defer { active?.collector.close() }
        while true {
            if let parentPID, getppid() != parentPID {
                logger.warning("the process that started this worker is gone; exiting")
                return
            }
            guard try poll([socket], timeoutMilliseconds: 500)[0], let frames = try socket.receive(dontWait: true) else {
                // Until a job arrives, say hello again every second: a hello queued to a coordinator
                // that has since gone (a kept-alive worker between jobs) is lost with its connection.
                if active == nil && pendingJob == nil && Date().timeIntervalSince(lastHello) >= 1 {
                    try hello(socket)
                    lastHello = Date()
                }
                continue
            }
            let message = try Message(frames: frames, routed: false, peerName: "coordinator \(coordinator)")
            switch message.type {
            case .job:
                var r = try message.reader()
                let descriptor = try JSONDecoder().decode(JobDescriptor.self, from: Data(try r.blob()))
                let collector = try r.string()
                guard message.data.count == descriptor.argShapes.count else {
                    throw ProtocolError.malformed(peer: message.peerName, "the job has \(descriptor.argShapes.count) args, \(message.data.count) frames came")
                }
                let args = try zip(message.data, descriptor.argShapes).map { try FloatBytes.decode($0.bytes, shape: $1, peer: message.peerName) }
                logger.info("job", metadata: ["job": "\(descriptor.jobId.prefix(12))", "shards": "\(descriptor.plan.shardCount)"])
                if let path = cache.model(descriptor.model.sha256) {
                    active = try start(descriptor, modelPath: path, collector: collector, args: args, socket: socket)
                } else {
                    pendingJob = (descriptor, collector, args)
                    try socket.send(.needModel, body: wire { $0.string(descriptor.model.sha256) })
                }
            case .model:
                guard let job = pendingJob else { continue }
                var r = try message.reader()
                let sha = try r.string()
                let names = try (0..<Int(r.u32())).map { _ in try r.string() }
                guard names.count == message.data.count, names.first == "model.onnx" else {
                    throw ProtocolError.malformed(peer: message.peerName, "model files do not match their names")
                }
                let path = try cache.store(sha, files: zip(names, message.data).map { ($0, $1.array) })
                active = try start(job.descriptor, modelPath: path, collector: job.collector, args: job.args, socket: socket)
                pendingJob = nil
            case .shard:
                guard let a = active else { continue }
                try compute(message, a, socket: socket)
            case .end:
                active?.collector.close()
                active = nil
                var r = try message.reader()
                let ok = try r.u8() == 1
                logger.info("job over", metadata: ["ok": "\(ok)"])
                guard keepAlive else { return }
                try hello(socket)
                lastHello = Date()
            default:
                logger.warning("unexpected message", metadata: ["type": "\(message.type)"])
            }
        }
    }

    private func hello(_ socket: Socket) throws {
        var host = [CChar](repeating: 0, count: 256)
        gethostname(&host, 255)
        try socket.send(.hello, body: wire { w in
            w.string(id)
            w.u32(UInt32(getpid()))
            w.string(String(cString: host))
            w.u32(UInt32(cache.hashes.count))
            for h in cache.hashes { w.string(h) }
        })
    }

    /// Loads the model and function, connects to the collector and asks for work; a failure is reported to the coordinator.
    private func start(_ d: JobDescriptor, modelPath: String, collector: String, args: [Tensor<Float>], socket: Socket) throws -> Active {
        do {
            let model = try ONNXModel(path: modelPath)
            let function = try d.spec.function.makeFunction(sequenceLength: d.xRowShape[1])
            let c = try Socket(context, .dealer)
            try c.set(SocketOption.routingID, bytes: Array(id.utf8))
            try c.connect(collector)
            outstanding = credit
            shardSeconds = nil
            unannounced = 0
            try socket.send(.ready, body: wire { $0.string(d.jobId); $0.u32(UInt32(credit)) })
            return Active(descriptor: d, model: model, function: function, args: args, collector: c)
        } catch {
            try socket.send(.error, body: wire { $0.string(d.jobId); $0.int(-1); $0.string("\(id): cannot start the job: \(error)") })
            throw error
        }
    }

    /// The credit to announce after a shard that took `seconds`: the one it used, plus more when
    /// shards are so quick that a few cannot cover the ~5 ms a message round trip can take.
    func replenish(after seconds: Double) -> Int {
        let smoothed = shardSeconds.map { 0.8 * $0 + 0.2 * seconds } ?? seconds
        shardSeconds = smoothed
        let wanted = min(maxCredit, max(credit, Int((0.005 / max(smoothed, 1e-6)).rounded(.up))))
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

    /// Computes the shards of one `shard` message, in order.
    private func compute(_ message: Message, _ a: Active, socket: Socket) throws {
        var r = try message.reader()
        let jobId = try r.string()
        guard jobId == a.descriptor.jobId else { return }
        let count = Int(try r.u32())
        guard count == message.data.count else {
            throw ProtocolError.malformed(peer: message.peerName, "\(count) shards announced, \(message.data.count) row frames sent")
        }
        for k in 0..<count {
            let shard = try r.int()
            let distinct = try r.ints()
            try compute(shard: shard, distinct: distinct, payload: message.data[k], a, socket: socket, peer: message.peerName)
        }
    }

    private func compute(shard: Int, distinct: [Int], payload: Frame, _ a: Active, socket: Socket, peer: String) throws {
        let jobId = a.descriptor.jobId
        let plan = a.descriptor.plan
        guard shard >= 0 && shard < plan.shardCount else {
            throw ProtocolError.malformed(peer: peer, "shard \(shard) is not in the job")
        }
        let range = plan.range(of: shard)
        let expected = a.descriptor.space.sequenceRows(for: range).distinct
        guard distinct == expected else {
            throw ProtocolError.malformed(peer: peer, "\(plan.describe(shard)) carries X rows \(distinct), expected \(expected)")
        }
        do {
            let x = try XCodec.decode(payload.bytes, count: distinct.count, rowShape: a.descriptor.xRowShape,
                                      as: a.descriptor.xEncoding, peer: peer)
            let started = Date()
            var batch = a.descriptor.space.batch(for: range, distinctX: x, args: a.args)
            if !a.descriptor.spec.shareRows { batch = Batch(x: batch.expandedX, args: batch.args) }
            let output = try a.function.apply(model: a.model, batch: batch)
            var body = WireWriter()
            body.string(jobId)
            body.int(shard)
            let leaves = output.leaves
            body.u32(UInt32(leaves.count))
            var frames: [OutgoingFrame] = []
            for (index, tensor) in leaves {
                body.ints(index)
                body.ints(Array(tensor.shape.dropFirst()))
                let buffer = OutgoingFrame.allocate(tensor.count * 4)
                tensor.storage.withUnsafeBytes { buffer.copyMemory(from: $0) }
                frames.append(.owned(buffer))
            }
            try a.collector.send(.result, body: body, data: frames)
            let grant = replenish(after: Date().timeIntervalSince(started))
            if grant > 0 { try socket.send(.ready, body: wire { $0.string(jobId); $0.u32(UInt32(grant)) }) }
        } catch let e as ProtocolError {
            throw e
        } catch {
            let text = "\(plan.describe(shard)) failed on \(id): \(error)"
            logger.error("shard failed", metadata: ["shard": "\(shard)", "error": "\(error)"])
            try socket.send(.error, body: wire { $0.string(jobId); $0.int(shard); $0.string(text) })
        }
    }
}
