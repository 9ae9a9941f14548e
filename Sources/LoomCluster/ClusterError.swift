import LoomProduct

/// Why a distributed job failed, naming the peer or shard at fault.
public struct ClusterError: Error, CustomStringConvertible, Sendable {
    public var message: String
    public init(_ message: String) { self.message = message }
    public var description: String { message }
}

extension ShardPlan {
    /// "shard 12 (examples 384..<416)", for messages.
    public func describe(_ shard: Int) -> String {
        guard shard >= 0 && shard < shardCount else { return "shard \(shard)" }
        let r = range(of: shard)
        return "shard \(shard) (examples \(r.lowerBound)..<\(r.upperBound))"
    }
}
