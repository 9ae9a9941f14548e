/// The first frame of every Loom message: magic, protocol version, message type.
///
/// 8 bytes: `L O O M`, version (u8), type (u8), two reserved bytes (0).
public struct Header: Equatable, Sendable {
    /// This build's protocol version.
    public static let version: UInt8 = 4
    static let magic: [UInt8] = Array("LOOM".utf8)

    public var type: MessageType

    public init(_ type: MessageType) { self.type = type }

    public var bytes: [UInt8] { Self.magic + [Self.version, type.rawValue, 0, 0] }

    /// Parses a header frame.
    public static func parse(_ frame: UnsafeRawBufferPointer, peer: String) throws -> Header {
        guard frame.count == 8, Array(frame[0..<4]) == magic else {
            throw ProtocolError.malformed(peer: peer, "not a Loom message (no LOOM header)")
        }
        guard frame[4] == version else { throw ProtocolError.version(peer: peer, frame[4]) }
        guard let type = MessageType(rawValue: frame[5]) else {
            throw ProtocolError.malformed(peer: peer, "unknown message type \(frame[5])")
        }
        return Header(type)
    }
}

/// Loom's message types; docs/protocol.md gives each one's frames, sender and receiver.
public enum MessageType: UInt8, Sendable, CaseIterable {
    /// worker → coordinator: a worker joins (id, pid, host, models it has cached).
    case hello = 1
    /// coordinator → worker: the job (descriptor JSON, the args, the collector's endpoint).
    case job = 2
    /// worker → coordinator: the model with this sha256 is not in the worker's cache.
    case needModel = 3
    /// coordinator → worker: the model's files.
    case model = 4
    /// worker → coordinator: room for more shards (the credit it grants).
    case ready = 5
    /// coordinator → worker: a shard to compute, with the X rows it needs.
    case shard = 6
    /// worker → collector: a shard's outputs.
    case result = 7
    /// collector → coordinator: shards written.
    case ack = 8
    /// coordinator → worker or collector: the job is over (done or failed).
    case end = 9
    /// worker or collector → coordinator: a failure that ends the job.
    case error = 10
    /// collector → coordinator: a collector joins (its endpoint).
    case collectorHello = 11
    /// coordinator → collector: the job to collect (descriptor JSON).
    case collect = 12
    /// collector → coordinator: the out folder is claimed; results may flow.
    case collectorReady = 13
    /// coordinator → collector: every shard is acknowledged; publish the manifest.
    case finish = 14
    /// collector → coordinator: the manifest is written.
    case finished = 15
    /// coordinator ↔ worker: still here (every heartbeat interval, both ways).
    case heartbeat = 16
    /// coordinator → worker: it declared this connection lost (silent past its liveness); the
    /// worker drops what it holds and joins again on a new connection.
    case rejoin = 17
}
