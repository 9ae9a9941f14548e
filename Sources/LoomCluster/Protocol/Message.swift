import ZeroMQ

/// A received Loom message, framed but not yet decoded: who sent it (on a ROUTER), its type,
/// its body and its data frames. ``decoded()`` gives the typed ``WireMessage``.
public struct Message {
    /// The sender's routing id (ROUTER sockets only).
    public let peer: PeerID?
    public let type: MessageType
    /// The body frame (fields written by ``WireMessage/encode(into:)``).
    public let body: Frame?
    /// Frames after the body: bulk data (X rows, results, model files).
    public let data: [Frame]
    /// The sender's role or endpoint, for messages.
    let source: String
    /// A name for the sender in messages (built only when a message needs it).
    public var peerName: String { peer.map { "\(source) \($0)" } ?? source }
    /// The message's size: every frame but the routing id.
    public let byteCount: Int
    /// The sender's CURVE public key, as the ZAP handler let it in (nil without keys).
    public var userKey: CurveKey? { header.property("User-Id").flatMap { CurveKey(z85: $0) } }
    private let header: Frame

    /// Parses frames from a ROUTER (`routed`: the first frame is the routing id) or a DEALER.
    public init(frames: [Frame], routed: Bool, peerName: String) throws {
        var rest = frames[...]
        if routed {
            guard let id = rest.popFirst() else { throw ProtocolError.malformed(peer: peerName, "an empty message") }
            peer = PeerID(id.array)
        } else {
            peer = nil
        }
        source = peerName
        let name = { [peer] in peer.map { "\(peerName) \($0)" } ?? peerName }
        guard let header = rest.popFirst() else { throw ProtocolError.malformed(peer: name(), "no header frame") }
        self.header = header
        do { type = try Header.parse(header.bytes, peer: "").type } catch ProtocolError.version(_, let v) {
            throw ProtocolError.version(peer: name(), v)
        } catch {
            throw ProtocolError.malformed(peer: name(), "\(error)")
        }
        body = rest.popFirst()
        data = Array(rest)
        byteCount = data.reduce(8 + (body?.count ?? 0)) { $0 + $1.count }
    }

    /// The typed message; throws ``ProtocolError`` for anything malformed.
    public func decoded() throws -> WireMessage { try WireMessage.decode(self) }
}
