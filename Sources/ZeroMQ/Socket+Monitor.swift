import CZeroMQ

/// The state of a socket's connection, from libzmq's monitor.
public enum ConnectionEvent: Equatable, Sendable {
    /// The ZMTP handshake with a peer completed: a process is there, bound and answering at transport level.
    case linked
    /// A connection with a peer ended.
    case unlinked
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
        guard zmq_socket_monitor(handle, endpoint, ZMQ_EVENT_HANDSHAKE_SUCCEEDED | ZMQ_EVENT_DISCONNECTED) == 0 else {
            throw ZMQError("zmq_socket_monitor", endpoint: endpoint)
        }
        let events = try Socket(context, .pair)
        try events.connect(endpoint)
        return events
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
        switch id {
        case ZMQ_EVENT_HANDSHAKE_SUCCEEDED: return .linked
        case ZMQ_EVENT_DISCONNECTED: return .unlinked
        default: return nil
        }
    }
}
