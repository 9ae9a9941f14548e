import LoomProduct

/// Every message of Loom's protocol, typed.
///
/// A message is a header frame (``Header``), a body frame (the fields below, encoded by
/// ``encode(into:)`` and decoded by ``decode(_:)``, in `WireMessage+Codec.swift` only), and bulk
/// data frames that are never copied into the body (X rows, results, model files, args). The
/// data frames travel beside the typed message; the codec checks their number.
public enum WireMessage: Equatable, Sendable {
    /// worker → coordinator: a worker joins.
    case hello(Hello)
    /// coordinator → worker: the job, the collector's endpoint and its CURVE public key ("" without
    /// keys). Data: each `--arg`'s tensor as float32, in `argChunks[i]` frames of at most ``chunkSize`` bytes.
    case job(descriptor: [UInt8], collector: String, collectorKey: String, argChunks: [Int])
    /// worker → coordinator: the model with this sha256 is not in the worker's cache.
    case needModel(sha256: String)
    /// coordinator → worker: the model's files, `model.onnx` first. Data: each file in frames of at
    /// most ``chunkSize`` bytes (an empty file: one empty frame).
    case model(sha256: String, files: [ModelFile])
    /// worker → coordinator: room for `credit` more shards, and the shards computed since the last `ready`.
    case ready(jobId: String, credit: Int, computed: [Int])
    /// coordinator → worker: shards to compute. Data: one frame per shard, its distinct X rows.
    case shard(jobId: String, shards: [ShardRows])
    /// worker → collector: shards' outputs, and the worker that computed them. Data: one frame per leaf per shard, in order.
    case result(jobId: String, worker: String, shards: [ShardLayout])
    /// collector → coordinator: shards written and made durable; `totals`, the collector's figures for the job so far.
    case ack(jobId: String, shards: [Int], totals: CollectorTotals = .init())
    /// coordinator → worker or collector: the job is over, done or failed.
    case end(ok: Bool, reason: String)
    /// worker or collector → coordinator: a failure that ends the job (`shard` nil: no shard in particular).
    case error(jobId: String, shard: Int?, message: String)
    /// coordinator → collector: the job to collect; `verify`: report each shard's copies (``copies``);
    /// the coordinator's Loom version.
    case collect(descriptor: [UInt8], verify: Bool, loomVersion: String = LoomVersion.string)
    /// collector → coordinator: `--out` is claimed; `resumed` are the shards its journal already holds.
    case collectorReady(jobId: String, resumed: [Int])
    /// coordinator → collector: every shard is acknowledged; publish the manifest.
    case finish(Finish)
    /// collector → coordinator: the manifest is written (`ok`), or why not.
    case finished(ok: Bool, message: String)
    /// both ways, between every pair of roles: still here. The collector's names the job it holds ("" if none).
    case heartbeat(job: String)
    /// coordinator → worker: this connection was declared lost; drop everything and join again.
    case rejoin
    /// collector → coordinator (`--verify`): who computed which bytes of a shard. The written copy
    /// is reported once it is journaled, every later copy as it arrives.
    case copies(jobId: String, copies: [Copy])
    /// coordinator → collector: forget these shards (their journal records, durably) and take no
    /// more results from these workers; answered by `redone`.
    case redo(jobId: String, shards: [Int], quarantined: [String])
    /// collector → coordinator: the shards of a `redo` are forgotten; they are to be computed again.
    case redone(jobId: String, shards: [Int])

    /// What the collector has seen of a job, for the coordinator's status and metrics.
    public struct CollectorTotals: Equatable, Sendable {
        /// Results that arrived for shards already written, and were dropped.
        public var duplicates: Int
        /// Message bytes of the results written (frames as sent).
        public var resultBytes: Int

        public init(duplicates: Int = 0, resultBytes: Int = 0) {
            self.duplicates = duplicates
            self.resultBytes = resultBytes
        }
    }

    /// A worker's introduction.
    public struct Hello: Equatable, Sendable {
        public var worker: String
        public var pid: Int
        public var host: String
        /// The sha256 of every model in the worker's cache.
        public var cachedModels: [String]
        /// The worker's Loom version (`loom --version`).
        public var loomVersion: String
        public init(worker: String, pid: Int, host: String, cachedModels: [String], loomVersion: String = LoomVersion.string) {
            self.worker = worker
            self.pid = pid
            self.host = host
            self.cachedModels = cachedModels
            self.loomVersion = loomVersion
        }
    }

    /// A file of a `model` message: its name and size.
    public struct ModelFile: Equatable, Sendable {
        public var name: String
        public var bytes: Int
        public init(name: String, bytes: Int) {
            self.name = name
            self.bytes = bytes
        }
    }

    /// One shard of a `shard` message: its number and the distinct X rows it uses.
    public struct ShardRows: Equatable, Sendable {
        public var shard: Int
        public var rows: [Int]
        public init(shard: Int, rows: [Int]) { self.shard = shard; self.rows = rows }
    }

    /// One shard of a `result` message: its number and, per output leaf, its index path and per-example shape.
    public struct ShardLayout: Equatable, Sendable {
        public var shard: Int
        public var leaves: [Leaf]
        public init(shard: Int, leaves: [Leaf]) { self.shard = shard; self.leaves = leaves }

        public struct Leaf: Equatable, Sendable {
            public var index: [Int]
            public var shape: [Int]
            public init(index: [Int], shape: [Int]) { self.index = index; self.shape = shape }
        }
    }

    /// One copy of a shard's result, as the collector received it.
    public struct Copy: Equatable, Sendable {
        public var shard: Int
        /// The worker that sent it (its `hello` name).
        public var worker: String
        /// ``ResultWriter/digest(rows:job:)`` of its bytes: 32 bytes.
        public var digest: [UInt8]
        /// Whether this is the copy written to the result (else a later one, not written).
        public var written: Bool
        public init(shard: Int, worker: String, digest: [UInt8], written: Bool) {
            self.shard = shard
            self.worker = worker
            self.digest = digest
            self.written = written
        }
    }

    /// What the coordinator tells the collector for the manifest.
    public struct Finish: Equatable, Sendable {
        public var jobId: String
        public var workers: Int
        public var bytesToWorkers: Int
        public var workersLost: Int
        public var leasesExpired: Int
        public var shardsReissued: Int
        /// `--verify`: what was checked and what came of it (nil: verification was off).
        public var verification: Verification.Summary?
        public init(
            jobId: String, workers: Int, bytesToWorkers: Int, workersLost: Int, leasesExpired: Int, shardsReissued: Int,
            verification: Verification.Summary? = nil
        ) {
            self.jobId = jobId
            self.workers = workers
            self.bytesToWorkers = bytesToWorkers
            self.workersLost = workersLost
            self.leasesExpired = leasesExpired
            self.shardsReissued = shardsReissued
            self.verification = verification
        }
    }

    /// The message's type, as the header carries it.
    public var type: MessageType {
        switch self {
        case .hello: .hello
        case .job: .job
        case .needModel: .needModel
        case .model: .model
        case .ready: .ready
        case .shard: .shard
        case .result: .result
        case .ack: .ack
        case .end: .end
        case .error: .error
        case .collect: .collect
        case .collectorReady: .collectorReady
        case .finish: .finish
        case .finished: .finished
        case .heartbeat: .heartbeat
        case .rejoin: .rejoin
        case .copies: .copies
        case .redo: .redo
        case .redone: .redone
        }
    }
}
