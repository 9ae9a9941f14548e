import ZeroMQ

/// How a role authenticates its peers: CURVE keys, or none (ipc, or `--insecure` over tcp).
///
/// Server roles (the coordinator, a stand-alone collector) need a running ``ZAPHandler`` with
/// their allow-list before they bind. (With Loom's ZAP domain set, Debian's libzmq 4.3 fails
/// every handshake when no handler answers, as `loom-fuzz`'s fake coordinator found; the check
/// below keeps a server from relying on that.)
public struct Security: Sendable {
    /// This role's key pair; nil: no keys.
    public var keys: CurveKeyPair?
    /// The handler that lets allowed client keys in (server roles).
    public var zap: ZAPHandler?
    /// The coordinator's public key: pinned by workers; for a stand-alone collector, the only key
    /// whose `collect`, `finish` and `end` count.
    public var coordinatorKey: CurveKey?
    /// A stand-alone collector's public key, for the coordinator that connects to it.
    public var collectorKey: CurveKey?

    public init(keys: CurveKeyPair? = nil, zap: ZAPHandler? = nil, coordinatorKey: CurveKey? = nil, collectorKey: CurveKey? = nil) {
        self.keys = keys
        self.zap = zap
        self.coordinatorKey = coordinatorKey
        self.collectorKey = collectorKey
    }

    /// No keys.
    public static let none = Security()

    /// Makes `socket` a CURVE server if this role has keys; refuses if no ZAP handler runs.
    func serve(_ socket: Socket) throws {
        guard let keys else { return }
        guard zap != nil else { throw ClusterError.zapHandlerNotRunning }
        try socket.makeCurveServer(keys)
    }

    /// Makes `socket` a CURVE client of a server with `server`'s key, if this role has keys; a
    /// server with a key and a role without (or the reverse) cannot talk, and this says so.
    func connect(_ socket: Socket, to server: CurveKey?, what: String) throws {
        switch (keys, server) {
        case (let keys?, let server?): try socket.makeCurveClient(keys, server: server)
        case (nil, nil): break
        case (nil, _?): throw ClusterError.keysMismatch(peer: what, peerUsesKeys: true)
        case (_?, nil): throw ClusterError.keysMismatch(peer: what, peerUsesKeys: false)
        }
    }
}
