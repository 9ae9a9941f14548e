import LoomProduct

/// Why a distributed job failed, naming the peer or shard at fault.
public struct ClusterError: Error, CustomStringConvertible, Sendable {
    public var message: String
    public init(_ message: String) { self.message = message }
    public var description: String { message }
}
