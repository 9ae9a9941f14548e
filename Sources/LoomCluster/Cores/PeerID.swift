/// A peer's ZeroMQ routing id.
public struct PeerID: Hashable, Sendable, CustomStringConvertible {
    public let bytes: [UInt8]
    public init(_ bytes: [UInt8]) { self.bytes = bytes }
    /// Hashes the id's bytes in one call (the synthesized hash feeds them one at a time, on every message).
    public func hash(into hasher: inout Hasher) {
        bytes.withUnsafeBytes { hasher.combine(bytes: $0) }
    }
    public static func == (a: PeerID, b: PeerID) -> Bool { a.bytes == b.bytes }
    public var description: String {
        let text = String(decoding: bytes, as: UTF8.self)
        if !text.isEmpty && text.allSatisfy({ $0.isASCII && !$0.isNewline && $0 != "\0" }) { return text }
        let hex = Array("0123456789abcdef")
        return String(bytes.flatMap { [hex[Int($0 >> 4)], hex[Int($0 & 15)]] })
    }
}
