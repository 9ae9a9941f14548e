import ZeroMQ

/// Why the coordinator's connection to its collector fails, from that socket's monitor: a pure
/// value that takes connection events and the time and returns the warning to log, if any.
///
/// Without it, a collector that holds another key than `--collector-key` names (or that refuses the
/// coordinator's key) shows only as "the collector has not answered": every connection is closed
/// during its CURVE handshake, and neither side says why.
struct CollectorConnectionWatch {
    /// The collector's endpoint, for the messages.
    let endpoint: String
    /// Seconds between two warnings.
    var interval: Double = 10
    /// Whether a handshake has completed on the current connection.
    private(set) var linked = false
    private var lastWarning = -Double.infinity

    init(endpoint: String) { self.endpoint = endpoint }

    /// The warning `event` calls for at `now`, at most one every ``interval`` seconds.
    mutating func handle(_ event: ConnectionEvent, now: Double) -> String? {
        let why: String
        switch event {
        case .linked:
            linked = true
            return nil
        case .unlinked:
            linked = false
            return nil
        case .wrongServerKey, .handshakeFailed:
            why =
                "every connection fails its CURVE handshake: the collector does not hold the key --collector-key names (compare it with the collector's --key), or it is not a Loom collector"
        case .keyRefused(let status):
            why = "the collector refused this coordinator's key (ZAP status \(status)): add the coordinator's public key to the collector's --allow"
        case .mechanismMismatch:
            why = "the collector and this coordinator disagree about keys: one of them uses CURVE keys and the other not (--insecure on one side?)"
        }
        guard now - lastWarning >= interval else { return nil }
        lastWarning = now
        return "cannot connect to the collector at \(endpoint): \(why)"
    }
}
