import CZeroMQ

#if canImport(Glibc)
    import Glibc
#endif

/// A CURVE public key (32 bytes), written in Z85 (40 characters) as libzmq does.
public struct CurveKey: Hashable, Sendable, CustomStringConvertible {
    /// The key's 40 Z85 characters.
    public let z85: String

    /// A key from its Z85 text; nil if it is not 40 characters of Z85 that decode to 32 bytes.
    public init?(z85 text: String) {
        guard text.utf8.count == 40, Self.decode(text) != nil else { return nil }
        z85 = text
    }

    /// A key from its 32 bytes.
    public init?(bytes: [UInt8]) {
        guard bytes.count == 32 else { return nil }
        var out = [CChar](repeating: 0, count: 41)
        guard zmq_z85_encode(&out, bytes, 32) != nil else { return nil }
        z85 = String(cBuffer: out)
    }

    /// The key's 32 bytes.
    public var bytes: [UInt8] { Self.decode(z85)! }

    static func decode(_ text: String) -> [UInt8]? {
        var out = [UInt8](repeating: 0, count: 32)
        guard text.utf8.count == 40, zmq_z85_decode(&out, text) != nil else { return nil }
        return out
    }

    /// A short, stable name for logs: the first 12 characters of the key's Z85.
    public var fingerprint: String { String(z85.prefix(12)) }

    public var description: String { fingerprint }
}

/// A CURVE key pair: a public key and its secret key.
public struct CurveKeyPair: Sendable {
    public let publicKey: CurveKey
    /// The secret key's Z85 text (never logged).
    public let secretZ85: String

    /// A new random key pair (libzmq's `zmq_curve_keypair`, from libsodium).
    public static func generate() throws -> CurveKeyPair {
        var pub = [CChar](repeating: 0, count: 41), sec = [CChar](repeating: 0, count: 41)
        guard zmq_curve_keypair(&pub, &sec) == 0 else { throw ZMQError("zmq_curve_keypair") }
        return CurveKeyPair(publicKey: CurveKey(z85: String(cBuffer: pub))!, secretZ85: String(cBuffer: sec))
    }

    /// The pair for a secret key; nil if `secret` is not a Z85 key.
    public init?(secretZ85 secret: String) {
        guard secret.utf8.count == 40, CurveKey.decode(secret) != nil else { return nil }
        var pub = [CChar](repeating: 0, count: 41)
        guard zmq_curve_public(&pub, secret) == 0, let key = CurveKey(z85: String(cBuffer: pub)) else { return nil }
        publicKey = key
        secretZ85 = secret
    }

    init(publicKey: CurveKey, secretZ85: String) {
        self.publicKey = publicKey
        self.secretZ85 = secretZ85
    }

    /// Whether this libzmq can do CURVE (it is built with libsodium).
    public static var isAvailable: Bool { zmq_has("curve") != 0 }
}

extension Socket {
    /// The ZAP domain Loom's servers use; the ZAP handler answers for it (and refuses others).
    public static let zapDomain = "loom"

    /// Makes this socket a CURVE server with `keys`: every peer must complete a CURVE handshake,
    /// and the ZAP handler (``ZAPHandler``) decides which client keys are let in. Call before bind.
    public func makeCurveServer(_ keys: CurveKeyPair) throws {
        try set(ZMQ_CURVE_SERVER, 1)
        try set(ZMQ_CURVE_SECRETKEY, bytes: Array(keys.secretZ85.utf8))
        try set(ZMQ_ZAP_DOMAIN, bytes: Array(Self.zapDomain.utf8))
        // ZMQ_ZAP_ENFORCE_DOMAIN (93) is a draft option that Debian's libzmq 4.3 does not build:
        // there it fails with EINVAL. It only changes anything when no ZAP handler is running, and
        // Loom's servers start theirs before they bind (the shells check), so that case is closed
        // either way.
        try? set(93, 1)
    }

    /// Makes this socket a CURVE client with `keys`, accepting only a server with `server`'s key. Call before connect.
    public func makeCurveClient(_ keys: CurveKeyPair, server: CurveKey) throws {
        try set(ZMQ_CURVE_SERVERKEY, bytes: Array(server.z85.utf8))
        try set(ZMQ_CURVE_PUBLICKEY, bytes: Array(keys.publicKey.z85.utf8))
        try set(ZMQ_CURVE_SECRETKEY, bytes: Array(keys.secretZ85.utf8))
    }
}

extension Frame {
    /// A metadata property libzmq attached to the message this frame came in ("User-Id": the ZAP
    /// handler's user id for the peer, "Peer-Address"); nil if none.
    public func property(_ name: String) -> String? {
        guard let p = zmq_msg_gets(msg, name) else { return nil }
        return String(cString: p)
    }
}
