import CZeroMQ

/// The state of a socket's connection, from libzmq's monitor.
public enum ConnectionEvent: Equatable, Sendable {
    /// The ZMTP handshake with a peer completed: a process is there, bound and answering at transport level.
    case linked
    /// A connection with a peer ended.
    case unlinked
    /// The peer's ZAP handler refused this side's key (status code, e.g. 400).
    case keyRefused(status: Int)
    /// The security handshake failed: the two sides' mechanisms differ (one has keys, the other not).
    case mechanismMismatch
    /// The security handshake failed on cryptography: the server does not hold the key the client pinned.
    case wrongServerKey
    /// The handshake failed for another reason (libzmq's protocol error code).
    case handshakeFailed(code: Int)
}

extension Socket {
    /// Starts watching this socket's connections; returns the socket its events arrive on.
    ///
    /// Poll the returned socket with the others and pass what it receives to
    /// ``connectionEvent(_:)``. Both belong to the calling thread; call ``stopMonitoring()``
    /// before closing the returned socket. Start it before `connect`: events from before it
    /// started are not reported, and a handshake with a peer already bound can be that fast.
    public func monitorConnections(in context: Context) throws -> Socket {
        checkThread()
        let endpoint = "inproc://loom-monitor-\(UInt(bitPattern: handle))-\(UInt32.random(in: 0...UInt32.max))"
        let events =
            ZMQ_EVENT_HANDSHAKE_SUCCEEDED | ZMQ_EVENT_DISCONNECTED | ZMQ_EVENT_HANDSHAKE_FAILED_AUTH
            | ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL | ZMQ_EVENT_HANDSHAKE_FAILED_NO_DETAIL
        guard zmq_socket_monitor(handle, endpoint, events) == 0 else {
            throw ZMQError("zmq_socket_monitor", endpoint: endpoint)
        }
        let socket = try Socket(context, .pair)
        try socket.connect(endpoint)
        return socket
    }

    /// Stops the monitor started by ``monitorConnections(in:)``.
    public func stopMonitoring() {
        checkThread()
        _ = zmq_socket_monitor(handle, nil, 0)
    }

    /// The event in a message from a monitor socket: its first frame holds a 16-bit event id and a 32-bit value.
    public static func connectionEvent(_ frames: [Frame]) -> ConnectionEvent? {
        guard let first = frames.first, first.bytes.count >= 6 else { return nil }
        let id = Int32(first.bytes.loadUnaligned(as: UInt16.self))
        let value = Int(first.bytes.loadUnaligned(fromByteOffset: 2, as: UInt32.self))
        switch id {
        case ZMQ_EVENT_HANDSHAKE_SUCCEEDED: return .linked
        case ZMQ_EVENT_DISCONNECTED: return .unlinked
        case ZMQ_EVENT_HANDSHAKE_FAILED_AUTH: return .keyRefused(status: value)
        case ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL:
            switch Int32(truncatingIfNeeded: value) {
            case ZMQ_PROTOCOL_ERROR_ZMTP_MECHANISM_MISMATCH: return .mechanismMismatch
            case ZMQ_PROTOCOL_ERROR_ZMTP_CRYPTOGRAPHIC: return .wrongServerKey
            default: return .handshakeFailed(code: value)
            }
        case ZMQ_EVENT_HANDSHAKE_FAILED_NO_DETAIL: return .handshakeFailed(code: 0)
        default: return nil
        }
    }
}
