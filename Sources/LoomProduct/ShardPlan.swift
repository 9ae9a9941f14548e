/// The cut of an index space into fixed batches: shard `s` is examples `s*B ..< min((s+1)*B, N)`.
///
/// Shards are the unit of work in every executor. Fixed boundaries mean a shard
/// gives the same floating-point result wherever and however often it is run.
public struct ShardPlan: Codable, Sendable, Equatable {
    /// The number of examples.
    public let examples: Int
    /// The examples per shard (the last one may hold fewer).
    public let batchSize: Int

    public init(examples: Int, batchSize: Int) throws {
        guard batchSize >= 1 else { throw IndexSpaceError("--batch-size must be at least 1, got \(batchSize)") }
        guard examples >= 0 else { throw IndexSpaceError("a negative number of examples") }
        self.examples = examples
        self.batchSize = batchSize
    }

    /// The number of shards.
    public var shardCount: Int { (examples + batchSize - 1) / batchSize }

    /// The examples of shard `shard`.
    public func range(of shard: Int) -> Range<Int> {
        precondition(shard >= 0 && shard < shardCount, "shard \(shard) is outside 0..<\(shardCount)")
        let lo = shard * batchSize
        return lo..<min(lo + batchSize, examples)
    }
}
