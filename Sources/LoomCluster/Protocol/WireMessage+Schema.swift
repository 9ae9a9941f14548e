/// What docs/protocol.md says of each message, generated from the codec.
extension MessageType {
    /// Who sends it to whom.
    public var route: String {
        switch self {
        case .hello, .needModel, .ready: "worker → coordinator"
        case .job, .model, .shard, .rejoin: "coordinator → worker"
        case .result: "worker → collector"
        case .ack, .collectorReady, .finished, .copies, .redone: "collector → coordinator"
        case .end: "coordinator → worker, collector"
        case .error: "worker, collector → coordinator"
        case .collect, .finish, .redo: "coordinator → collector"
        case .heartbeat: "every role ↔ its peers"
        }
    }

    /// The data frames after the body.
    public var dataFrames: String {
        switch self {
        case .job: "each `--arg`'s tensor, float32, in its frames of at most 16 MiB"
        case .model: "each file in frames of at most 16 MiB, in the order named"
        case .shard: "one per shard: its distinct X rows (one byte per position, or float32)"
        case .result: "one per leaf per shard, in order: float32 rows of the shard's examples"
        default: "–"
        }
    }
}

extension WireMessage {
    /// One message of every type, with every list non-empty: the codec's round-trip tests and the
    /// schema below use them.
    public static let samples: [WireMessage] = [
        .hello(Hello(worker: "worker-a-1", pid: 42, host: "a", cachedModels: [String(repeating: "ab", count: 32)])),
        .job(descriptor: Array("{}".utf8), collector: "tcp://*:5556", collectorKey: "rq:rM>}U?@Lns47E1%kR.o@n%FcmmsL/@{H8]yf7", argChunks: [1, 2]),
        .needModel(sha256: String(repeating: "0f", count: 32)),
        .model(sha256: String(repeating: "0f", count: 32), files: [.init(name: "model.onnx", bytes: 10), .init(name: "weights.bin", bytes: 20 << 20)]),
        .ready(jobId: "j", credit: 2, computed: [3, 4]),
        .shard(jobId: "j", shards: [ShardRows(shard: 7, rows: [0, 1]), ShardRows(shard: 8, rows: [1])]),
        .result(jobId: "j", worker: "worker-a-1", shards: [ShardLayout(shard: 7, leaves: [.init(index: [0], shape: [2, 3]), .init(index: [1], shape: [])])]),
        .ack(jobId: "j", shards: [7]),
        .end(ok: true, reason: "done"),
        .error(jobId: "j", shard: 7, message: "boom"),
        .collect(descriptor: Array("{}".utf8), verify: true),
        .collectorReady(jobId: "j", resumed: [1, 2]),
        .finish(
            Finish(
                jobId: "j", workers: 2, bytesToWorkers: 100, workersLost: 0, leasesExpired: 1, shardsReissued: 1,
                verification: .init(fraction: 0.5, verified: 3, mismatches: 1, unverified: 1, quarantined: ["worker-b-2"]))),
        .finished(ok: false, message: "disk full"),
        .heartbeat(job: "j"),
        .rejoin,
        .copies(jobId: "j", copies: [Copy(shard: 7, worker: "worker-a-1", digest: [UInt8](repeating: 9, count: 32), written: true)]),
        .redo(jobId: "j", shards: [7, 9], quarantined: ["worker-b-2"]),
        .redone(jobId: "j", shards: [7, 9])
    ]

    /// The body's fields as the encoder writes them ("string job id, u32 credit granted, …").
    public var schema: String {
        var w = WireWriter(recording: true)
        encode(into: &w)
        return w.schema.isEmpty ? "empty" : w.schema.joined(separator: ", ")
    }

    /// docs/protocol.md's message table, generated from ``samples`` and the encoder.
    public static var documentationTable: String {
        var lines = ["| type | name | from → to | body | data frames |", "|---|---|---|---|---|"]
        for m in samples {
            lines.append("| \(m.type.rawValue) | `\(m.type)` | \(m.type.route) | \(m.schema) | \(m.type.dataFrames) |")
        }
        return lines.joined(separator: "\n")
    }
}
