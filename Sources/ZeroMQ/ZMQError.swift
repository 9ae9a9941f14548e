import CZeroMQ

/// A failed libzmq call: what Loom was doing, on which endpoint, and the errno.
public struct ZMQError: Error, CustomStringConvertible, Sendable, Equatable {
    /// The operation: "bind", "connect", "send", ...
    public var operation: String
    /// The endpoint involved, if any.
    public var endpoint: String?
    /// libzmq's errno (`zmq_errno()`).
    public var errno: Int32

    public init(_ operation: String, endpoint: String? = nil, errno: Int32 = zmq_errno()) {
        self.operation = operation
        self.endpoint = endpoint
        self.errno = errno
    }

    /// libzmq's words for the errno.
    public var reason: String { String(cString: zmq_strerror(errno)) }

    public var description: String {
        "ZeroMQ \(operation)\(endpoint.map { " \($0)" } ?? "") failed: \(reason) (errno \(errno))"
    }
}
