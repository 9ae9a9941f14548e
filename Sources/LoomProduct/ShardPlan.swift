/// The cut of an index space into fixed batches, and of the batches into shards.
///
/// Batch `b` is examples `b*B ..< min((b+1)*B, N)`; shard `s` is the `K` consecutive batches
/// from batch `s*K` (the last shard may hold fewer). Batches are what the model sees, so a
/// result never depends on `K`; shards are the unit of work every executor schedules, journals
/// and retries. Fixed boundaries mean a shard gives the same floating-point result wherever and
/// however often it is run.
public struct ShardPlan: Codable, Sendable, Equatable {
    /// The number of examples.
    public let examples: Int
    /// The examples per batch (the last one may hold fewer).
    public let batchSize: Int
    /// The batches per shard, `K`.
    public let batchesPerShard: Int

    public init(examples: Int, batchSize: Int, batchesPerShard: Int = 1) throws {
        guard batchSize >= 1 else { throw IndexSpaceError("--batch-size must be at least 1, got \(batchSize)") }
        guard batchesPerShard >= 1 else { throw IndexSpaceError("--shard-batches must be at least 1, got \(batchesPerShard)") }
        guard examples >= 0 else { throw IndexSpaceError("a negative number of examples") }
        self.examples = examples
        self.batchSize = batchSize
        self.batchesPerShard = batchesPerShard
    }

    /// The examples per shard (the last one may hold fewer).
    public var shardSize: Int { batchSize * batchesPerShard }

    /// The number of shards.
    public var shardCount: Int { (examples + shardSize - 1) / shardSize }

    /// The number of batches.
    public var batchCount: Int { (examples + batchSize - 1) / batchSize }

    /// The examples of shard `shard`.
    public func range(of shard: Int) -> Range<Int> {
        precondition(shard >= 0 && shard < shardCount, "shard \(shard) is outside 0..<\(shardCount)")
        let lo = shard * shardSize
        return lo..<min(lo + shardSize, examples)
    }

    /// The batches of shard `shard`, in order, as ranges of examples.
    public func batches(of shard: Int) -> [Range<Int>] {
        let r = range(of: shard)
        return stride(from: r.lowerBound, to: r.upperBound, by: batchSize).map { $0..<min($0 + batchSize, r.upperBound) }
    }
}

extension ShardPlan {
    /// The work a shard should hold when its size is chosen automatically, in estimated
    /// operations: 5–50 ms on one core for small models (less when rows are shared), so that
    /// moving a shard costs a few per cent of computing it. Moving one costs about 0.3 ms of CPU
    /// across the processes when every core is busy (messages each way through the worker's
    /// threads, the coordinator's and the collector's, a write and a journal record): at 2^26,
    /// FlattenDense's 2.4-ms shards lost a tenth of two workers' time to it (docs/performance.md).
    public static let targetShardOperations = 1 << 27
    /// The most result bytes a shard should carry when its size is chosen automatically: a
    /// shard's results are held by its worker and sent as one message.
    public static let maximumShardResultBytes = 16 << 20
    /// Automatic sizing leaves at least this many shards when there are enough batches, for
    /// progress, load balance and the grain of retries.
    public static let minimumAutomaticShards = 64

    /// The batches per shard chosen when the user gives none: one, unless a batch is so cheap
    /// that its work is small next to what moving a shard costs.
    ///
    /// - Parameters:
    ///   - operationsPerExample: an estimate of one example's work (multiply-adds and element
    ///     operations); nil when it could not be estimated, which gives one batch per shard.
    ///   - resultBytesPerExample: an estimate of one example's results; nil: not bounded by them.
    /// The answer depends only on the model, the function and the input shapes, so every
    /// process (and every resumption) of a job cuts it the same way.
    public static func automaticBatchesPerShard(
        examples: Int, batchSize: Int, operationsPerExample: Double?,
        resultBytesPerExample: Double? = nil
    ) -> Int {
        guard let ops = operationsPerExample, ops > 0, ops.isFinite, batchSize >= 1 else { return 1 }
        let perBatch = ops * Double(batchSize)
        var wanted = Int(min(Double(Int.max / 2), (Double(targetShardOperations) / perBatch).rounded(.down)))
        if let bytes = resultBytesPerExample, bytes > 0, bytes.isFinite {
            wanted = min(wanted, Int(min(Double(Int.max / 2), (Double(maximumShardResultBytes) / (bytes * Double(batchSize))).rounded(.down))))
        }
        let batches = (examples + batchSize - 1) / batchSize
        let cap = max(1, batches / minimumAutomaticShards)
        return max(1, min(wanted, cap))
    }
}

extension ShardPlan {
    /// "shard 12 (examples 384..<416)", for messages.
    public func describe(_ shard: Int) -> String {
        guard shard >= 0 && shard < shardCount else { return "shard \(shard)" }
        let r = range(of: shard)
        return "shard \(shard) (examples \(r.lowerBound)..<\(r.upperBound))"
    }
}
