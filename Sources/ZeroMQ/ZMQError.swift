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

/// libzmq could not be loaded: the library is missing or too old. Says which, and what to install.
public struct ZMQLibraryError: Error, CustomStringConvertible, Sendable, Equatable {
    /// One line naming the library, the loader's reason and the package to install.
    public var description: String

    /// Loads libzmq now, or throws why it cannot be loaded.
    public static func load() throws {
        guard loom_zmq_load() == 0 else { throw ZMQLibraryError(description: String(cString: loom_zmq_error())) }
    }
}
