import CZeroMQ

/// One received frame, owned by libzmq until released: its bytes are read in place, without a copy.
public final class Frame {
    let msg: UnsafeMutablePointer<zmq_msg_t>

    init(msg: UnsafeMutablePointer<zmq_msg_t>) { self.msg = msg }

    deinit { loom_zmq_msg_delete(msg) }

    /// The frame's bytes, valid while the frame lives.
    public var bytes: UnsafeRawBufferPointer {
        UnsafeRawBufferPointer(start: zmq_msg_data(msg), count: zmq_msg_size(msg))
    }

    /// The number of bytes.
    public var count: Int { zmq_msg_size(msg) }

    /// A copy of the bytes.
    public var array: [UInt8] { Array(bytes) }
}

/// A frame to send: bytes Loom copies into the message, or a malloc'ed buffer libzmq takes over.
public enum OutgoingFrame {
    case bytes([UInt8])
    /// A buffer from `OutgoingFrame.allocate(_:)`; libzmq frees it once sent.
    case owned(UnsafeMutableRawBufferPointer)

    /// A malloc'ed buffer to fill and send as `.owned`, so a large payload is written once and never copied.
    public static func allocate(_ count: Int) -> UnsafeMutableRawBufferPointer {
        UnsafeMutableRawBufferPointer(start: malloc(max(count, 1)), count: count)
    }

    /// Frees an owned buffer that will not be sent.
    public func discard() {
        if case .owned(let b) = self { free(b.baseAddress) }
    }
}
