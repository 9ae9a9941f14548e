import CZeroMQ

#if canImport(Glibc)
    import Glibc
#endif

/// A libzmq socket. Not thread-safe, like the socket it wraps: create it on the thread
/// that will use it and touch it from nowhere else (a debug check enforces this).
///
/// Closing sets LINGER to 0, so a closed socket never blocks the process on unsent messages.
public final class Socket {
    /// The socket types Loom uses.
    public enum Kind: Int32 {
        case pair = 0, pub = 1, sub = 2, req = 3, rep = 4, dealer = 5, router = 6, pull = 7, push = 8
    }

    let handle: UnsafeMutableRawPointer
    private var closed = false
    private let owner = pthread_self()
    /// The endpoints bound or connected, for messages.
    public private(set) var endpoints: [String] = []

    /// Creates a socket of `kind` in `context`.
    public init(_ context: Context, _ kind: Kind) throws {
        guard let h = zmq_socket(context.handle, kind.rawValue) else { throw ZMQError("zmq_socket") }
        handle = h
        try set(ZMQ_LINGER, 0)
    }

    deinit { close() }

    @inline(__always) func checkThread() {
        assert(pthread_equal(owner, pthread_self()) != 0, "a ZeroMQ socket was used from a thread that does not own it")
    }

    /// Closes the socket (LINGER 0: pending messages are dropped).
    public func close() {
        guard !closed else { return }
        closed = true
        zmq_close(handle)
    }

    /// Closes the socket, letting its queued messages go out for up to `milliseconds`: the
    /// context's termination (at the end of the process) waits for them, or for the time to run
    /// out when a peer is gone. For last words, such as telling workers the job is over.
    public func close(lingeringFor milliseconds: Int32) {
        guard !closed else { return }
        checkThread()
        _ = try? set(ZMQ_LINGER, milliseconds)
        close()
    }

    /// Binds to an endpoint (`tcp://127.0.0.1:5555`, `tcp://*:0`, `ipc:///tmp/x`).
    public func bind(_ endpoint: String) throws {
        checkThread()
        guard zmq_bind(handle, endpoint) == 0 else { throw ZMQError("bind", endpoint: endpoint) }
        endpoints.append(endpoint)
    }

    /// Connects to an endpoint; libzmq reconnects by itself if the peer goes away.
    public func connect(_ endpoint: String) throws {
        checkThread()
        guard zmq_connect(handle, endpoint) == 0 else { throw ZMQError("connect", endpoint: endpoint) }
        endpoints.append(endpoint)
    }

    /// The endpoint last bound, with the port libzmq chose for `:0` or `*`.
    public var lastEndpoint: String {
        var buffer = [CChar](repeating: 0, count: 512)
        var size = buffer.count
        guard zmq_getsockopt(handle, ZMQ_LAST_ENDPOINT, &buffer, &size) == 0 else { return endpoints.last ?? "" }
        return String(cBuffer: buffer)
    }

    /// Sets an integer option.
    public func set(_ option: Int32, _ value: Int32) throws {
        var v = value
        guard zmq_setsockopt(handle, option, &v, MemoryLayout<Int32>.size) == 0 else { throw ZMQError("setsockopt \(option)") }
    }

    /// Sets a 64-bit integer option (ZMQ_MAXMSGSIZE).
    public func set(_ option: Int32, int64 value: Int64) throws {
        var v = value
        guard zmq_setsockopt(handle, option, &v, MemoryLayout<Int64>.size) == 0 else { throw ZMQError("setsockopt \(option)") }
    }

    /// Sets a bytes option (ZMQ_ROUTING_ID, keys).
    public func set(_ option: Int32, bytes: [UInt8]) throws {
        guard zmq_setsockopt(handle, option, bytes, bytes.count) == 0 else { throw ZMQError("setsockopt \(option)") }
    }

    /// Sends a multipart message. Returns false if it would block (`dontWait`) or the peer is gone (EHOSTUNREACH).
    ///
    /// EINTR is retried; owned buffers are handed to libzmq (or freed if sending fails).
    @discardableResult
    public func send(_ frames: [OutgoingFrame], dontWait: Bool = false) throws -> Bool {
        checkThread()
        for (i, frame) in frames.enumerated() {
            var flags: Int32 = i < frames.count - 1 ? ZMQ_SNDMORE : 0
            if dontWait { flags |= ZMQ_DONTWAIT }
            let msg = loom_zmq_msg_new()!
            defer { free(msg) }
            switch frame {
            case .bytes(let b):
                guard zmq_msg_init_size(msg, b.count) == 0 else { throw ZMQError("zmq_msg_init_size") }
                if !b.isEmpty { b.withUnsafeBytes { zmq_msg_data(msg).copyMemory(from: $0.baseAddress!, byteCount: b.count) } }
            case .owned(let buffer):
                guard loom_zmq_msg_init_owned(msg, buffer.baseAddress, buffer.count) == 0 else {
                    Glibc.free(buffer.baseAddress)
                    throw ZMQError("zmq_msg_init_data")
                }
            }
            while true {
                if zmq_msg_send(msg, handle, flags) >= 0 { break }
                let e = zmq_errno()
                if e == EINTR { continue }
                zmq_msg_close(msg)
                // Free any owned buffers not yet handed over.
                for later in frames[(i + 1)...] { if case .owned(let b) = later { Glibc.free(b.baseAddress) } }
                if e == EAGAIN || e == EHOSTUNREACH { return false }
                throw ZMQError("send", endpoint: endpoints.first, errno: e)
            }
        }
        return true
    }

    /// Sends a multipart message of byte arrays.
    @discardableResult
    public func send(_ frames: [[UInt8]], dontWait: Bool = false) throws -> Bool {
        try send(frames.map { .bytes($0) }, dontWait: dontWait)
    }

    /// Receives a multipart message; nil if none is waiting (`dontWait`) or the receive timed out. EINTR is retried.
    public func receive(dontWait: Bool = false) throws -> [Frame]? {
        checkThread()
        var frames: [Frame] = []
        while true {
            let msg = loom_zmq_msg_new()!
            zmq_msg_init(msg)
            let frame = Frame(msg: msg)
            while zmq_msg_recv(msg, handle, dontWait && frames.isEmpty ? ZMQ_DONTWAIT : 0) < 0 {
                let e = zmq_errno()
                if e == EINTR { continue }
                if e == EAGAIN && frames.isEmpty { return nil }
                throw ZMQError("receive", endpoint: endpoints.first, errno: e)
            }
            frames.append(frame)
            if zmq_msg_more(msg) == 0 { return frames }
        }
    }
}

/// Waits until one of `sockets` has a message to read, or `timeoutMilliseconds` pass (-1: forever).
///
/// Returns, per socket, whether it is readable. EINTR returns all false.
public func poll(_ sockets: [Socket], timeoutMilliseconds: Int) throws -> [Bool] {
    var items = sockets.map { zmq_pollitem_t(socket: $0.handle, fd: 0, events: Int16(ZMQ_POLLIN), revents: 0) }
    let n = zmq_poll(&items, Int32(items.count), timeoutMilliseconds)
    if n < 0 {
        if zmq_errno() == EINTR { return [Bool](repeating: false, count: sockets.count) }
        throw ZMQError("poll")
    }
    return items.map { $0.revents & Int16(ZMQ_POLLIN) != 0 }
}

extension Socket {
    /// Waits until a message can be queued on this socket without blocking, or `timeoutMilliseconds` pass.
    public func waitWritable(timeoutMilliseconds: Int) throws -> Bool {
        checkThread()
        var item = zmq_pollitem_t(socket: handle, fd: 0, events: Int16(ZMQ_POLLOUT), revents: 0)
        let n = zmq_poll(&item, 1, timeoutMilliseconds)
        if n < 0 {
            if zmq_errno() == EINTR { return false }
            throw ZMQError("poll")
        }
        return item.revents & Int16(ZMQ_POLLOUT) != 0
    }

    /// Makes libzmq ping the peers of this socket every `interval` seconds and drop a connection
    /// that has carried nothing for `timeout` seconds (ZMTP heartbeats).
    ///
    /// Over TCP a partition drops packets silently: without this, both ends keep a connection
    /// that carries nothing for as long as the kernel retransmits (minutes), a connecting socket
    /// never reconnects, and a ROUTER keeps the dead peer's routing id, so a peer that comes back
    /// under the same id is refused. With it, the dead connection is closed within `timeout`
    /// and a connecting socket reconnects as soon as the network lets it.
    public func dropSilentPeers(interval: Double, timeout: Double) throws {
        let ivl = Int32(clamping: Int((interval * 1000).rounded()))
        let tmo = Int32(clamping: Int((timeout * 1000).rounded()))
        try set(ZMQ_HEARTBEAT_IVL, max(1, ivl))
        try set(ZMQ_HEARTBEAT_TIMEOUT, max(1, tmo))
        // The peer drops us too if it hears nothing from us for that long (rounded to 100 ms by ZMTP).
        try set(ZMQ_HEARTBEAT_TTL, min(6_553_500, max(100, tmo)))
    }
}

/// libzmq socket option numbers Loom sets.
public enum SocketOption {
    public static let linger = ZMQ_LINGER
    public static let sendHighWaterMark = ZMQ_SNDHWM
    public static let receiveHighWaterMark = ZMQ_RCVHWM
    public static let routingID = ZMQ_ROUTING_ID
    public static let routerMandatory = ZMQ_ROUTER_MANDATORY
    public static let maxMessageSize = ZMQ_MAXMSGSIZE
    public static let immediate = ZMQ_IMMEDIATE
    public static let reconnectInterval = ZMQ_RECONNECT_IVL
    public static let reconnectIntervalMax = ZMQ_RECONNECT_IVL_MAX
    /// A ROUTER gives a routing id already in use to the newest connection instead of refusing it.
    public static let routerHandover = ZMQ_ROUTER_HANDOVER
}
