import ZeroMQ

/// A received Loom message: who sent it (on a ROUTER), its type, its body and its data frames.
public struct Message {
    /// The sender's routing id (ROUTER sockets only).
    public let peer: PeerID?
    public let type: MessageType
    /// The body frame (fields written with ``WireWriter``).
    public let body: Frame?
    /// Frames after the body: bulk data (X rows, results, model files).
    public let data: [Frame]
    /// The sender's role or endpoint, for messages.
    let source: String
    /// A name for the sender in messages (built only when a message needs it).
    public var peerName: String { peer.map { "\(source) \($0)" } ?? source }
    /// The message's size: every frame but the routing id.
    public let byteCount: Int

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
        do { type = try Header.parse(header.bytes, peer: "").type } catch {
            throw ProtocolError.malformed(peer: name(), "\(error)")
        }
        body = rest.popFirst()
        data = Array(rest)
        byteCount = 8 + (body?.count ?? 0) + data.reduce(0) { $0 + $1.count }
    }

    /// A reader over the body.
    public func reader() throws -> WireReader {
        guard let body else { throw ProtocolError.malformed(peer: peerName, "\(type) has no body") }
        return WireReader(body.bytes, peer: peerName)
    }
}

extension Socket {
    /// Sends a Loom message: [routing id,] header, body, data frames.
    @discardableResult
    func send(_ type: MessageType, to peer: PeerID? = nil, body: WireWriter = WireWriter(), data: [OutgoingFrame] = [],
              counting counter: UnsafeMutablePointer<Int>? = nil, dontWait: Bool = false) throws -> Bool {
        if let counter {
            counter.pointee += 8 + body.bytes.count + data.reduce(0) { n, f in
                switch f { case .bytes(let b): n + b.count; case .owned(let b): n + b.count }
            }
        }
        var frames: [OutgoingFrame] = []
        if let peer { frames.append(.bytes(peer.bytes)) }
        frames.append(.bytes(Header(type).bytes))
        frames.append(.bytes(body.bytes))
        frames += data
        return try send(frames, dontWait: dontWait)
    }
}
