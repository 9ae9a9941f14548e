import ZeroMQ

/// The one place where Loom's messages are encoded and decoded.
extension WireMessage {
    /// Longest job id, worker id, host name, reason or error text a peer may send, in bytes.
    static let maxName = 1 << 10
    static let maxText = 1 << 16
    /// The most credit one `ready` may grant.
    public static let maxCredit = 1 << 16
    /// The most dimensions in a result leaf's per-example shape.
    static let maxRank = 32
    /// `ZMQ_MAXMSGSIZE` (the largest frame a peer may send) of sockets that take only control
    /// messages: the coordinator's connection to its collector, a worker's compute connection.
    public static let maxControlFrame = 16 << 20
    /// Of a worker's connection to its coordinator: model and arg chunks, a shard's X rows.
    public static let maxWorkerFrame = 256 << 20
    /// Of the collector's socket: one output of one shard (`--shard-batches` × `--batch-size` examples).
    public static let maxResultFrame = 1 << 30
    /// The largest frame of a chunked transfer (the model's files, the args).
    public static let chunkSize = 16 << 20
    /// The largest model file or arg a peer may announce.
    static let maxTransfer = 1 << 40
    /// The frames a transfer of `bytes` bytes takes: at least one.
    public static func chunkCount(_ bytes: Int) -> Int { max(1, (bytes + chunkSize - 1) / chunkSize) }

    /// `bytes` cut into frames of at most ``chunkSize`` bytes (one frame if empty).
    public static func chunks(_ bytes: [UInt8]) -> [OutgoingFrame] {
        guard bytes.count > chunkSize else { return [.bytes(bytes)] }
        return stride(from: 0, to: bytes.count, by: chunkSize).map { .bytes(Array(bytes[$0..<min($0 + chunkSize, bytes.count)])) }
    }

    /// The bytes of consecutive chunk frames, joined.
    public static func joined(_ frames: ArraySlice<Frame>) -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(frames.reduce(0) { $0 + $1.bytes.count })
        for f in frames { out.append(contentsOf: f.bytes) }
        return out
    }

    /// Writes the body's fields.
    public func encode(into w: inout WireWriter) {
        switch self {
        case .hello(let h):
            w.string(h.worker, "worker id")
            w.u32(UInt32(clamping: h.pid), "pid")
            w.string(h.host, "host")
            w.each(h.cachedModels, "cached model") { $0.string($1, "sha256") }
            w.string(h.loomVersion, "Loom version")
        case .job(let descriptor, let collector, let key, let argChunks):
            w.blob(descriptor, "job descriptor (JSON)")
            w.string(collector, "collector endpoint")
            w.string(key, "collector's public key (Z85; empty without keys)")
            w.ints(argChunks, "frames per arg")
        case .needModel(let sha):
            w.string(sha, "model sha256")
        case .model(let sha, let files):
            w.string(sha, "model sha256")
            w.each(files, "file") { w, f in
                w.string(f.name, "name (`model.onnx` first, then external data)")
                w.int(f.bytes, "bytes")
            }
        case .ready(let jobId, let credit, let computed):
            w.string(jobId, "job id")
            w.u32(UInt32(clamping: credit), "credit granted")
            w.ints(computed, "shards computed since the last ready")
        case .shard(let jobId, let shards):
            w.string(jobId, "job id")
            w.each(shards, "shard") { w, s in
                w.int(s.shard, "shard")
                w.ints(s.rows, "distinct X row indices")
            }
        case .result(let jobId, let worker, let shards):
            w.string(jobId, "job id")
            w.string(worker, "worker id")
            w.each(shards, "shard") { w, s in
                w.int(s.shard, "shard")
                w.each(s.leaves, "leaf") { w, leaf in
                    w.ints(leaf.index, "index path")
                    w.ints(leaf.shape, "per-example shape")
                }
            }
        case .ack(let jobId, let shards, let totals):
            w.string(jobId, "job id")
            w.ints(shards, "shards written")
            w.int(totals.duplicates, "duplicates dropped so far")
            w.int(totals.resultBytes, "result bytes written so far")
        case .end(let ok, let reason):
            w.bool(ok, "ok")
            w.string(reason, "reason")
        case .error(let jobId, let shard, let message):
            w.string(jobId, "job id")
            w.int(shard ?? -1, "shard (−1: none)")
            w.string(message, "message")
        case .collect(let descriptor, let verify, let version):
            w.blob(descriptor, "job descriptor (JSON)")
            w.bool(verify, "report copies (--verify)")
            w.string(version, "Loom version")
        case .collectorReady(let jobId, let resumed):
            w.string(jobId, "job id")
            w.ints(resumed, "shards already in the journal")
        case .finish(let f):
            w.string(f.jobId, "job id")
            w.int(f.workers, "workers")
            w.int(f.bytesToWorkers, "bytes sent to workers")
            w.int(f.workersLost, "workers lost")
            w.int(f.leasesExpired, "leases expired")
            w.int(f.shardsReissued, "shards reissued")
            w.bool(f.verification != nil, "verification on")
            let v = f.verification ?? .init(fraction: 0, verified: 0, mismatches: 0, unverified: 0, quarantined: [])
            w.u32(UInt32(clamping: Int((v.fraction * 1_000_000).rounded())), "verified fraction (millionths)")
            w.int(v.verified, "shards verified")
            w.int(v.mismatches, "mismatches")
            w.int(v.unverified, "shards selected but not verified")
            w.each(v.quarantined, "quarantined worker") { $0.string($1, "worker id") }
        case .finished(let ok, let message):
            w.bool(ok, "ok")
            w.string(message, "message")
        case .heartbeat(let job):
            w.string(job, "job held (collector; else empty)")
        case .rejoin:
            break
        case .copies(let jobId, let copies):
            w.string(jobId, "job id")
            w.each(copies, "copy") { w, c in
                w.int(c.shard, "shard")
                w.string(c.worker, "worker id")
                w.blob(c.digest, "digest (32 bytes)")
                w.bool(c.written, "written")
            }
        case .redo(let jobId, let shards, let quarantined):
            w.string(jobId, "job id")
            w.ints(shards, "shards to forget")
            w.each(quarantined, "quarantined worker") { $0.string($1, "worker id") }
        case .redone(let jobId, let shards):
            w.string(jobId, "job id")
            w.ints(shards, "shards forgotten")
        }
    }

    /// The body frame.
    public var body: [UInt8] {
        var w = WireWriter()
        encode(into: &w)
        return w.bytes
    }

    /// Decodes a received message: every field is read, bounds-checked and range-checked; the
    /// body must end with the last field, and the data frames must be as many as the body says.
    public static func decode(_ m: Message) throws -> WireMessage {
        guard let body = m.body else { throw ProtocolError.malformed(peer: m.peerName, "\(m.type) has no body frame") }
        return try decode(m.type, body: body.bytes, dataFrames: m.data.count, peer: m.peerName)
    }

    /// Decodes a body of type `type` followed by `dataFrames` data frames.
    public static func decode(_ type: MessageType, body: UnsafeRawBufferPointer, dataFrames: Int, peer: String) throws -> WireMessage {
        var r = WireReader(body, peer: peer)
        let message = try decodeBody(type, &r)
        try r.end("\(type)")
        let expected = message.dataFrameCount
        guard expected == nil || expected == dataFrames else {
            throw ProtocolError.malformed(peer: peer, "\(type) announces \(expected!) data frames; \(dataFrames) came")
        }
        return message
    }

    static func decodeBody(_ type: MessageType, _ r: inout WireReader) throws -> WireMessage {
        func sha(_ r: inout WireReader) throws -> String {
            let s = try r.string("model sha256", maxLength: 64)
            guard s.utf8.count == 64, s.allSatisfy(\.isHexDigit) else { throw r.malformed("a model sha256 '\(s.prefix(64))' is not 64 hex digits") }
            return s
        }
        func jobId(_ r: inout WireReader) throws -> String { try r.string("job id", maxLength: maxName) }
        switch type {
        case .hello:
            let worker = try r.string("worker id", maxLength: maxName)
            let pid = Int(try r.u32("pid"))
            let host = try r.string("host", maxLength: maxName)
            let cached = try r.each("cached models", minimumSize: 4) { try sha(&$0) }
            let version = try r.string("Loom version", maxLength: 64)
            return .hello(Hello(worker: worker, pid: pid, host: host, cachedModels: cached, loomVersion: version))
        case .job:
            let descriptor = try r.blob("job descriptor")
            let collector = try r.string("collector endpoint", maxLength: maxName)
            let key = try r.string("collector key", maxLength: 40)
            guard key.isEmpty || CurveKey(z85: key) != nil else { throw r.malformed("the collector's key is not a CURVE public key") }
            let argChunks = try r.ints("frames per arg", in: 1...chunkCount(maxTransfer))
            return .job(descriptor: descriptor, collector: collector, collectorKey: key, argChunks: argChunks)
        case .needModel:
            return .needModel(sha256: try sha(&r))
        case .model:
            let s = try sha(&r)
            let files = try r.each("model files", minimumSize: 12) { r in
                let name = try r.string("model file name", maxLength: 255)
                guard !name.isEmpty, name != ".", name != "..", !name.contains("/"), !name.contains("\0") else {
                    throw r.malformed("a model file name '\(name)' is not a plain file name")
                }
                return ModelFile(name: name, bytes: try r.int("model file bytes", in: 0...maxTransfer))
            }
            guard files.first?.name == "model.onnx" else { throw r.malformed("the model's first file is not model.onnx") }
            return .model(sha256: s, files: files)
        case .ready:
            let id = try jobId(&r)
            let credit = Int(try r.u32("credit"))
            guard credit <= maxCredit else { throw r.malformed("a credit of \(credit) is more than \(maxCredit)") }
            return .ready(jobId: id, credit: credit, computed: try r.ints("computed shards"))
        case .shard:
            let id = try jobId(&r)
            let shards = try r.each("shards", minimumSize: 12) { r in
                ShardRows(shard: try r.int("shard", in: 0...Int.max), rows: try r.ints("X rows"))
            }
            return .shard(jobId: id, shards: shards)
        case .result:
            let id = try jobId(&r)
            let worker = try r.string("worker id", maxLength: maxName)
            let shards = try r.each("shards", minimumSize: 12) { r in
                let shard = try r.int("shard", in: 0...Int.max)
                let leaves = try r.each("leaves", minimumSize: 8) { r in
                    let index = try r.ints("index path")
                    let shape = try r.ints("per-example shape")
                    guard shape.count <= maxRank else { throw r.malformed("a leaf of rank \(shape.count)") }
                    var elements = 1
                    for d in shape {
                        let (p, overflow) = elements.multipliedReportingOverflow(by: d)
                        guard !overflow, p <= Int.max / 4 else { throw r.malformed("a leaf's shape \(shape) overflows") }
                        elements = p
                    }
                    return ShardLayout.Leaf(index: index, shape: shape)
                }
                return ShardLayout(shard: shard, leaves: leaves)
            }
            return .result(jobId: id, worker: worker, shards: shards)
        case .ack:
            return .ack(
                jobId: try jobId(&r), shards: try r.ints("acknowledged shards"),
                totals: .init(
                    duplicates: try r.int("duplicates dropped so far", in: 0...Int.max), resultBytes: try r.int("result bytes written so far", in: 0...Int.max))
            )
        case .end:
            return .end(ok: try r.bool("ok"), reason: try r.string("reason", maxLength: maxText))
        case .error:
            let id = try jobId(&r)
            let shard = try r.int("shard", in: -1...Int.max)
            return .error(jobId: id, shard: shard < 0 ? nil : shard, message: try r.string("message", maxLength: maxText))
        case .collect:
            return .collect(
                descriptor: try r.blob("job descriptor"), verify: try r.bool("verify"), loomVersion: try r.string("Loom version", maxLength: 64))
        case .collectorReady:
            return .collectorReady(jobId: try jobId(&r), resumed: try r.ints("resumed shards"))
        case .finish:
            let id = try jobId(&r)
            let n = 0...Int.max
            return .finish(
                Finish(
                    jobId: id, workers: try r.int("workers", in: n), bytesToWorkers: try r.int("bytes", in: n),
                    workersLost: try r.int("workers lost", in: n), leasesExpired: try r.int("leases expired", in: n),
                    shardsReissued: try r.int("shards reissued", in: n), verification: try verification(&r)))
        case .finished:
            return .finished(ok: try r.bool("ok"), message: try r.string("message", maxLength: maxText))
        case .heartbeat:
            return .heartbeat(job: try jobId(&r))
        case .rejoin:
            return .rejoin
        case .copies:
            let id = try jobId(&r)
            let copies = try r.each("copies", minimumSize: 8 + 4 + 4 + 32 + 1) { r in
                let shard = try r.int("shard", in: 0...Int.max)
                let worker = try r.string("worker id", maxLength: maxName)
                let digest = try r.blob("digest")
                guard digest.count == 32 else { throw r.malformed("a digest of \(digest.count) bytes, not 32") }
                return Copy(shard: shard, worker: worker, digest: digest, written: try r.bool("written"))
            }
            return .copies(jobId: id, copies: copies)
        case .redo:
            let id = try jobId(&r)
            let shards = try r.ints("shards")
            return .redo(jobId: id, shards: shards, quarantined: try r.each("quarantined", minimumSize: 4) { try $0.string("worker id", maxLength: maxName) })
        case .redone:
            return .redone(jobId: try jobId(&r), shards: try r.ints("shards"))
        }
    }

    static func verification(_ r: inout WireReader) throws -> Verification.Summary? {
        let on = try r.bool("verification on")
        let millionths = try r.u32("verified fraction")
        guard millionths <= 1_000_000 else { throw r.malformed("a verified fraction of \(millionths) millionths") }
        let n = 0...Int.max
        let summary = Verification.Summary(
            fraction: Double(millionths) / 1_000_000, verified: try r.int("verified", in: n), mismatches: try r.int("mismatches", in: n),
            unverified: try r.int("unverified", in: n),
            quarantined: try r.each("quarantined", minimumSize: 4) { try $0.string("worker id", maxLength: maxName) })
        return on ? summary : nil
    }

    /// How many data frames follow the body (nil: any number).
    public var dataFrameCount: Int? {
        switch self {
        case .job(_, _, _, let argChunks): argChunks.reduce(0, +)
        case .model(_, let files): files.reduce(0) { $0 + Self.chunkCount($1.bytes) }
        case .shard(_, let shards): shards.count
        case .result(_, _, let shards): shards.reduce(0) { $0 + $1.leaves.count }
        default: 0
        }
    }
}

extension Socket {
    /// Sends a Loom message: [routing id,] header, body, then its data frames.
    ///
    /// - Parameter counting: adds the bytes sent (all frames but the routing id) to this counter.
    /// - Returns: false if `dontWait` and the message could not be queued now.
    @discardableResult
    public func send(
        _ message: WireMessage, to peer: PeerID? = nil, data: [OutgoingFrame] = [],
        counting counter: UnsafeMutablePointer<Int>? = nil, dontWait: Bool = false
    ) throws -> Bool {
        precondition(message.dataFrameCount.map { $0 == data.count } ?? true, "\(message.type) needs \(message.dataFrameCount!) data frames")
        let body = message.body
        if let counter {
            counter.pointee +=
                8 + body.count
                + data.reduce(0) { n, f in
                    switch f {
                    case .bytes(let b): n + b.count;
                    case .owned(let b): n + b.count
                    }
                }
        }
        var frames: [OutgoingFrame] = []
        frames.reserveCapacity(3 + data.count)
        if let peer { frames.append(.bytes(peer.bytes)) }
        frames.append(.bytes(Header(message.type).bytes))
        frames.append(.bytes(body))
        frames += data
        return try send(frames, dontWait: dontWait)
    }
}
