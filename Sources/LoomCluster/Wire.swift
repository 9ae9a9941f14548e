/// Little-endian binary encoding for Loom's protocol frames.
public struct WireWriter {
    public private(set) var bytes: [UInt8] = []

    public init(capacity: Int = 64) { bytes.reserveCapacity(capacity) }

    public mutating func u8(_ v: UInt8) { bytes.append(v) }
    public mutating func u32(_ v: UInt32) { withUnsafeBytes(of: v.littleEndian) { bytes.append(contentsOf: $0) } }
    public mutating func u64(_ v: UInt64) { withUnsafeBytes(of: v.littleEndian) { bytes.append(contentsOf: $0) } }
    public mutating func int(_ v: Int) { u64(UInt64(bitPattern: Int64(v))) }
    public mutating func string(_ s: String) { let b = Array(s.utf8); u32(UInt32(b.count)); bytes.append(contentsOf: b) }
    public mutating func blob(_ b: [UInt8]) { u32(UInt32(b.count)); bytes.append(contentsOf: b) }
    public mutating func ints(_ v: [Int]) { u32(UInt32(v.count)); for x in v { int(x) } }
}

/// Reads what ``WireWriter`` wrote; every read is bounds-checked and throws ``ProtocolError``.
public struct WireReader {
    let bytes: UnsafeRawBufferPointer
    var offset = 0
    let peer: String

    public init(_ bytes: UnsafeRawBufferPointer, peer: String = "peer") {
        self.bytes = bytes
        self.peer = peer
    }

    public var isAtEnd: Bool { offset >= bytes.count }

    mutating func take(_ n: Int) throws -> UnsafeRawBufferPointer {
        guard n >= 0, bytes.count - offset >= n else { throw ProtocolError.malformed(peer: peer, "a frame ends early") }
        defer { offset += n }
        return UnsafeRawBufferPointer(rebasing: bytes[offset..<(offset + n)])
    }

    public mutating func u8() throws -> UInt8 { try take(1)[0] }
    public mutating func u32() throws -> UInt32 { UInt32(littleEndian: try take(4).loadUnaligned(as: UInt32.self)) }
    public mutating func u64() throws -> UInt64 { UInt64(littleEndian: try take(8).loadUnaligned(as: UInt64.self)) }
    public mutating func int() throws -> Int { Int(Int64(bitPattern: try u64())) }

    /// A count that must fit in what is left of the frame (each element at least `minimumSize` bytes).
    mutating func count(minimumSize: Int) throws -> Int {
        let n = Int(try u32())
        guard n * max(minimumSize, 1) <= bytes.count - offset else { throw ProtocolError.malformed(peer: peer, "a count of \(n) exceeds the frame") }
        return n
    }

    public mutating func string() throws -> String { String(decoding: try take(try count(minimumSize: 1)), as: UTF8.self) }
    public mutating func blob() throws -> [UInt8] { Array(try take(try count(minimumSize: 1))) }
    public mutating func ints() throws -> [Int] { try (0..<count(minimumSize: 8)).map { _ in try int() } }
}

/// A message that does not follow Loom's protocol.
public enum ProtocolError: Error, CustomStringConvertible, Sendable, Equatable {
    case malformed(peer: String, String)
    case version(peer: String, UInt8)

    public var description: String {
        switch self {
        case .malformed(let p, let s): "malformed message from \(p): \(s)"
        case .version(let p, let v): "\(p) speaks Loom protocol version \(v); this Loom speaks \(Header.version): run the same Loom version everywhere"
        }
    }
}
