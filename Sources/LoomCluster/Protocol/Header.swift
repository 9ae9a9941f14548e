/// The first frame of every Loom message: magic, protocol version, message type.
///
/// 8 bytes: `L O O M`, version (u8), type (u8), two reserved bytes (0).
public struct Header: Equatable, Sendable {
    /// This build's protocol version.
    public static let version: UInt8 = 7
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
        guard frame[6] == 0, frame[7] == 0 else { throw ProtocolError.malformed(peer: peer, "the header's reserved bytes are not zero") }
        guard let type = MessageType(rawValue: frame[5]) else {
            throw ProtocolError.malformed(peer: peer, "unknown message type \(frame[5])")
        }
        return Header(type)
    }
}

/// Loom's message types: the header's type byte. ``WireMessage`` has one case per type.
public enum MessageType: UInt8, Sendable, CaseIterable {
    case hello = 1
    case job = 2
    case needModel = 3
    case model = 4
    case ready = 5
    case shard = 6
    case result = 7
    case ack = 8
    case end = 9
    case error = 10
    // 11 was `collectorHello`, never sent; it stays reserved.
    case collect = 12
    case collectorReady = 13
    case finish = 14
    case finished = 15
    case heartbeat = 16
    case rejoin = 17
    case copies = 18
    case redo = 19
    case redone = 20
}
