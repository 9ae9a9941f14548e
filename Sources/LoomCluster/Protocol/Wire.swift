import LoomProduct

/// Little-endian binary encoding for Loom's protocol frames.
///
/// Every field is written with a label. A writer made with `recording: true` also keeps a
/// schema of what it wrote ("string job id, u32 credit, …"): docs/protocol.md's message table is
/// that schema, written by the same code that encodes each message, so the two cannot drift.
public struct WireWriter {
    public private(set) var bytes: [UInt8] = []
    /// The fields written, as `kind label` (recording writers only).
    public private(set) var schema: [String] = []
    let recording: Bool

    public init(capacity: Int = 64, recording: Bool = false) {
        bytes.reserveCapacity(capacity)
        self.recording = recording
    }

    private mutating func note(_ kind: String, _ label: String) { if recording { schema.append("\(kind) \(label)") } }
    private mutating func raw32(_ v: UInt32) { withUnsafeBytes(of: v.littleEndian) { bytes.append(contentsOf: $0) } }
    private mutating func raw64(_ v: UInt64) { withUnsafeBytes(of: v.littleEndian) { bytes.append(contentsOf: $0) } }

    public mutating func u8(_ v: UInt8, _ label: String) { note("u8", label); bytes.append(v) }
    public mutating func bool(_ v: Bool, _ label: String) { note("u8", label + " (0 or 1)"); bytes.append(v ? 1 : 0) }
    public mutating func u32(_ v: UInt32, _ label: String) { note("u32", label); raw32(v) }
    public mutating func int(_ v: Int, _ label: String) { note("int", label); raw64(UInt64(bitPattern: Int64(v))) }
    public mutating func string(_ s: String, _ label: String) {
        note("string", label)
        let b = Array(s.utf8)
        raw32(UInt32(b.count))
        bytes.append(contentsOf: b)
    }
    public mutating func blob(_ b: [UInt8], _ label: String) { note("blob", label); raw32(UInt32(b.count)); bytes.append(contentsOf: b) }
    public mutating func ints(_ v: [Int], _ label: String) {
        note("ints", label)
        raw32(UInt32(v.count))
        for x in v { raw64(UInt64(bitPattern: Int64(x))) }
    }

    /// A u32 count, then `write` for each item; recorded as `u32 n, then n × (label: fields)`.
    public mutating func each<T>(_ items: [T], _ label: String, _ write: (inout WireWriter, T) -> Void) {
        raw32(UInt32(items.count))
        if recording {
            var inner = WireWriter(recording: true)
            if let first = items.first { write(&inner, first) }
            schema.append("u32 n, then n × \(label): (\(inner.schema.joined(separator: ", ")))")
        }
        var silent = WireWriter(recording: false)
        swap(&silent.bytes, &bytes)
        for item in items { write(&silent, item) }
        swap(&silent.bytes, &bytes)
    }
}

/// Reads what ``WireWriter`` wrote. Every read is bounds-checked and throws ``ProtocolError``
/// naming the field; nothing a peer sends can make it trap.
public struct WireReader {
    let bytes: UnsafeRawBufferPointer
    var offset = 0
    let peer: String

    public init(_ bytes: UnsafeRawBufferPointer, peer: String = "peer") {
        self.bytes = bytes
        self.peer = peer
    }

    public var isAtEnd: Bool { offset >= bytes.count }

    func malformed(_ text: String) -> ProtocolError { .malformed(peer: peer, text) }

    mutating func take(_ n: Int, _ label: String) throws -> UnsafeRawBufferPointer {
        guard n >= 0, bytes.count - offset >= n else { throw malformed("the frame ends inside \(label)") }
        defer { offset += n }
        return UnsafeRawBufferPointer(rebasing: bytes[offset..<(offset + n)])
    }

    public mutating func u8(_ label: String) throws -> UInt8 { try take(1, label)[0] }
    public mutating func bool(_ label: String) throws -> Bool {
        let v = try u8(label)
        guard v <= 1 else { throw malformed("\(label) is \(v), not 0 or 1") }
        return v == 1
    }
    public mutating func u32(_ label: String) throws -> UInt32 { UInt32(littleEndian: try take(4, label).loadUnaligned(as: UInt32.self)) }
    public mutating func int(_ label: String) throws -> Int { Int(Int64(littleEndian: try take(8, label).loadUnaligned(as: Int64.self))) }

    /// An int in `range`.
    public mutating func int(_ label: String, in range: ClosedRange<Int>) throws -> Int {
        let v = try int(label)
        guard range.contains(v) else { throw malformed("\(label) is \(v), outside \(range.lowerBound)...\(range.upperBound)") }
        return v
    }

    /// A count whose elements (each at least `minimumSize` bytes) fit in what is left of the frame.
    public mutating func count(_ label: String, minimumSize: Int) throws -> Int {
        let n = Int(try u32(label))
        guard n <= (bytes.count - offset) / max(minimumSize, 1) else { throw malformed("\(label): a count of \(n) exceeds the frame") }
        return n
    }

    /// A string of at most `maxLength` bytes of UTF-8.
    public mutating func string(_ label: String, maxLength: Int = 1 << 16) throws -> String {
        let n = try count(label, minimumSize: 1)
        guard n <= maxLength else { throw malformed("\(label) is \(n) bytes long, more than \(maxLength)") }
        let raw = try take(n, label)
        guard let s = String(validating: raw, as: UTF8.self) else { throw malformed("\(label) is not UTF-8") }
        return s
    }
    public mutating func blob(_ label: String) throws -> [UInt8] { Array(try take(try count(label, minimumSize: 1), label)) }

    /// A list of ints, each in `range`.
    public mutating func ints(_ label: String, in range: ClosedRange<Int> = 0...Int.max) throws -> [Int] {
        let n = try count(label, minimumSize: 8)
        var out: [Int] = []
        out.reserveCapacity(n)
        for _ in 0..<n { out.append(try int(label, in: range)) }
        return out
    }

    /// A u32 count, then `read` for each item (each at least `minimumSize` bytes).
    public mutating func each<T>(_ label: String, minimumSize: Int, _ read: (inout WireReader) throws -> T) throws -> [T] {
        let n = try count(label, minimumSize: minimumSize)
        var out: [T] = []
        out.reserveCapacity(n)
        for _ in 0..<n { out.append(try read(&self)) }
        return out
    }

    /// Refuses bytes left over after the last field.
    public func end(_ what: String) throws {
        guard isAtEnd else { throw malformed("\(bytes.count - offset) bytes follow the last field of \(what)") }
    }
}

/// A message that does not follow Loom's protocol.
public enum ProtocolError: Error, CustomStringConvertible, Sendable, Equatable {
    case malformed(peer: String, String)
    case version(peer: String, UInt8)

    public var description: String {
        switch self {
        case .malformed(let p, let s): "malformed message from \(p): \(s)"
        case .version(let p, let v):
            "\(p) speaks Loom protocol version \(v); this Loom (\(LoomVersion.string)) speaks \(Header.version): run the same Loom version everywhere"
        }
    }
}
