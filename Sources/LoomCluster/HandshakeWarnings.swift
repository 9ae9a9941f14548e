import ZeroMQ

/// Warnings for connections that fail their CURVE handshake on a server's socket (the
/// coordinator's, a stand-alone collector's), from its connection monitor: the peer's address
/// and the likely cause, at most one every ``interval`` seconds.
///
/// Such a failure happens before the ZAP handler is asked, so without these nothing is logged:
/// a peer pinning another server key, or one without keys, just never gets through.
struct HandshakeWarnings {
    /// The server's role ("coordinator", "collector"), for the hints.
    let role: String
    /// Seconds between two warnings.
    var interval: Double = 10
    private var last = -Double.infinity

    init(role: String) { self.role = role }

    /// The warning's metadata for a monitor message at `now`: nil for links and unlinks, and within ``interval`` of the last.
    mutating func warning(for frames: [Frame], now: Double) -> [String: String]? {
        guard let event = Socket.connectionEvent(frames), event != .linked, event != .unlinked, now - last >= interval else { return nil }
        last = now
        let why =
            switch event {
            case .mechanismMismatch: "it has no CURVE key (a peer without --key?)"
            case .wrongServerKey: "it pinned another \(role) key (its --\(role)-key is not this \(role)'s)"
            case .keyRefused: "its key is not in --allow"
            case .handshakeFailed(let code): "the handshake failed (libzmq protocol error \(code))"
            case .linked, .unlinked: ""
            }
        return ["endpoint": frames.count > 1 ? String(decoding: frames[1].bytes, as: UTF8.self) : "?", "why": why]
    }
}
