import FoundationEssentials
import LoomFunctions
import LoomGenome
import LoomONNX
import LoomTensor

#if canImport(Glibc)
    import Glibc
#endif

/// The `manifest.json` of an `--out` folder, written last, once every result file is complete.
public struct Manifest: Codable, Sendable, Equatable {
    /// One result file: a leaf of the output nesting.
    public struct Output: Codable, Sendable, Equatable {
        /// The leaf's place in tangermeme's nesting: `[]`, `[k]` or `[k, j]`.
        public var index: [Int]
        /// The `.npy` file, relative to the folder.
        public var file: String
        /// The tensor's shape: the index-space axes, then the function's output axes.
        public var shape: [Int]
        /// Always "float32".
        public var dtype: String
        /// The file's SHA-256, once complete (`loom verify` checks it).
        public var sha256: String?

        public init(index: [Int], file: String, shape: [Int], dtype: String, sha256: String? = nil) {
            self.index = index
            self.file = file
            self.shape = shape
            self.dtype = dtype
            self.sha256 = sha256
        }
    }

    /// The model as the manifest records it.
    public struct ModelRecord: Codable, Sendable, Equatable {
        public var path: String
        public var sha256: String
        public var bytes: Int

        public init(path: String, sha256: String, bytes: Int) {
            self.path = path
            self.sha256 = sha256
            self.bytes = bytes
        }
    }

    public var outputs: [Output]
    public var loomVersion: String
    public var jobId: String
    public var mode: ProductMode
    public var function: FunctionSpec
    public var model: ModelRecord
    public var inputs: [Job.InputDescription]
    public var batchSize: Int
    /// Batches per shard (absent in manifests written before shards could hold several).
    public var batchesPerShard: Int?
    public var examples: Int
    public var shards: Int
    public var axes: [Int]
    public var workers: Int
    public var elapsedSeconds: Double
    public var completedAt: String
    /// Bytes that crossed the network in a distributed run (absent in process).
    public var transfer: Transfer? = nil
    /// Faults seen and survived.
    public var reliability: Reliability? = nil
    /// The BLAS kernels the job ran: the set Loom pinned, and OpenBLAS's name for them (where known).
    public var kernels: KernelRecord? = nil
    /// Verification by recomputation (`--verify`; absent when off).
    public var verification: VerificationRecord? = nil
    /// Where X's rows came from, when X was read from a FASTA file: row i of every result is `sequences.windows` row i.
    public var sequences: SequenceSource? = nil

    /// What `--verify` checked and what came of it.
    public struct VerificationRecord: Codable, Sendable, Equatable {
        /// The fraction of shards selected to be computed twice.
        public var fraction: Double
        /// Selected shards whose written copy a second worker confirmed, bit for bit.
        public var verified: Int
        /// Second copies that differed from the written one (each decided by a third worker).
        public var mismatches: Int
        /// Selected shards that could not be verified.
        public var unverified: Int
        /// Workers whose bytes lost a vote; every shard they wrote was computed again.
        public var quarantined: [String]
        /// In words, when something was not verified.
        public var note: String?

        /// One line for the terminal: what was verified, and any mismatch or quarantine.
        public var sentence: String {
            var s = "verify: \(verified) shard\(verified == 1 ? "" : "s") confirmed bit for bit by a second worker"
            if mismatches > 0 { s += "; \(mismatches) mismatch\(mismatches == 1 ? "" : "es"), decided by a third" }
            if !quarantined.isEmpty { s += "; quarantined \(quarantined.joined(separator: ", ")), whose shards were computed again" }
            if unverified > 0 { s += "; \(unverified) not verified (too few workers)" }
            return s
        }

        public init(fraction: Double, verified: Int, mismatches: Int, unverified: Int, quarantined: [String]) {
            self.fraction = fraction
            self.verified = verified
            self.mismatches = mismatches
            self.unverified = unverified
            self.quarantined = quarantined
            note =
                unverified > 0
                ? "\(unverified) selected shards were not verified: no second worker could compute them (verification needs two or more workers, and three to decide a mismatch)"
                : nil
        }
    }

    public struct KernelRecord: Codable, Sendable, Equatable {
        public var set: String
        public var openblas: String?
        public init(set: String, openblas: String?) {
            self.set = set
            self.openblas = openblas
        }
    }

    /// What went wrong during the job and was recovered from.
    public struct Reliability: Codable, Sendable, Equatable {
        /// Workers declared dead (silent past their liveness) or gone.
        public var workersLost: Int
        /// Leases that ran out (a stalled worker's shards given to others).
        public var leasesExpired: Int
        /// Shards handed out again: after a lost worker, an expired lease, or speculatively.
        public var shardsReissued: Int
        /// Results that arrived for shards already written, and were dropped.
        public var duplicatesDropped: Int
        /// Shards found complete in the journal when the job started (a resumed job).
        public var resumedShards: Int

        public init(workersLost: Int = 0, leasesExpired: Int = 0, shardsReissued: Int = 0, duplicatesDropped: Int = 0, resumedShards: Int = 0) {
            self.workersLost = workersLost
            self.leasesExpired = leasesExpired
            self.shardsReissued = shardsReissued
            self.duplicatesDropped = duplicatesDropped
            self.resumedShards = resumedShards
        }
    }

    /// Message bytes of a distributed run: frames as sent, without transport overhead.
    public struct Transfer: Codable, Sendable, Equatable {
        /// Coordinator to workers: the job, the model, shards with their X rows.
        public var toWorkersBytes: Int
        /// Workers to the collector: results.
        public var toCollectorBytes: Int
        /// Both, per example.
        public var bytesPerExample: Double

        public init(toWorkersBytes: Int, toCollectorBytes: Int, examples: Int) {
            self.toWorkersBytes = toWorkersBytes
            self.toCollectorBytes = toCollectorBytes
            self.bytesPerExample = examples > 0 ? Double(toWorkersBytes + toCollectorBytes) / Double(examples) : 0
        }
    }

    public init(
        outputs: [Output], loomVersion: String, jobId: String, mode: ProductMode, function: FunctionSpec,
        model: ModelRecord, inputs: [Job.InputDescription], batchSize: Int, batchesPerShard: Int = 1, examples: Int, shards: Int,
        axes: [Int], workers: Int, elapsedSeconds: Double, completedAt: String
    ) {
        self.outputs = outputs
        self.loomVersion = loomVersion
        self.jobId = jobId
        self.mode = mode
        self.function = function
        self.model = model
        self.inputs = inputs
        self.batchSize = batchSize
        self.batchesPerShard = batchesPerShard
        self.examples = examples
        self.shards = shards
        self.axes = axes
        self.workers = workers
        self.elapsedSeconds = elapsedSeconds
        self.completedAt = completedAt
    }

    /// The manifest of a finished job: the one builder, for the in-process executor and the collector.
    public static func finished(
        jobId: String, spec: JobSpec, model: ModelRecord, inputs: [Job.InputDescription], plan: ShardPlan,
        axes: [Int], outputs: [Output], workers: Int, elapsed: Double, sequences: SequenceSource? = nil
    ) -> Manifest {
        var m = Manifest(
            outputs: outputs, loomVersion: LoomVersion.string, jobId: jobId, mode: spec.mode, function: spec.function,
            model: model, inputs: inputs, batchSize: plan.batchSize, batchesPerShard: plan.batchesPerShard,
            examples: plan.examples, shards: plan.shardCount, axes: axes, workers: workers, elapsedSeconds: elapsed,
            completedAt: isoNowString())
        m.kernels = KernelRecord(set: spec.kernels?.rawValue ?? "openblas-auto", openblas: BLAS.loadedCoreName)
        m.sequences = sequences
        return m
    }

    /// The manifest as pretty-printed JSON with snake_case keys.
    public func encoded() throws -> [UInt8] {
        let encoder = JSONEncoder()
        encoder.keyEncodingStrategy = .convertToSnakeCase
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        return Array(try encoder.encode(self)) + [0x0A]
    }

    /// Reads a manifest file.
    public static func read(path: String) throws -> Manifest {
        let decoder = JSONDecoder()
        decoder.keyDecodingStrategy = .convertFromSnakeCase
        return try decoder.decode(Manifest.self, from: Data(try FileIO.readAll(path)))
    }
}

/// The current time as an ISO 8601 string, for manifests.
public func isoNowString() -> String {
    // gmtime_r + strftime rather than ISO8601DateFormatter, whose first use loads ICU's data
    // (about 10 ms of CPU at the end of every job).
    var now = time(nil)
    var parts = tm()
    gmtime_r(&now, &parts)
    var buffer = [CChar](repeating: 0, count: 32)
    let n = strftime(&buffer, buffer.count, "%Y-%m-%dT%H:%M:%SZ", &parts)
    return String(decoding: buffer[..<n].map { UInt8(bitPattern: $0) }, as: UTF8.self)
}
