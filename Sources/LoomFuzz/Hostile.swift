import LoomCluster
import LoomSimulation

/// A seeded source of hostile inputs: messages for the protocol, mutations for files.
public struct Hostile {
    private var random: SeededRandom

    public init(seed: UInt64) { random = SeededRandom(seed: seed) }

    public mutating func next() -> UInt64 { random.next() }

    public mutating func below(_ n: Int) -> Int { Int(next() % UInt64(max(n, 1))) }

    public mutating func bytes(_ n: Int) -> [UInt8] { (0..<n).map { _ in UInt8(truncatingIfNeeded: next()) } }

    /// One hostile message, as its frames: random bytes; every message type truncated,
    /// bit-flipped or with extreme values; another protocol version; wrong data frames; a
    /// large frame; or well-formed messages of the wrong role.
    public mutating func message(largeFrames: Bool = true) -> [[UInt8]] {
        let sample = WireMessage.samples[below(WireMessage.samples.count)]
        let header = Header(sample.type).bytes
        var body = sample.body
        switch below(8) {
        case 0: return (0...below(4)).map { _ in bytes(below(64)) }
        case 1: body = Array(body.prefix(below(body.count + 1)))
        case 2: if !body.isEmpty { body[below(body.count)] ^= UInt8(1 << below(8)) }
        case 3:
            if body.count >= 4 {
                let at = below(body.count - 3)
                for k in 0..<4 { body[at + k] = [0xFF, 0x7F, 0x00, 0x80][below(4)] ^ UInt8(k) }
            }
        case 4: return [Array("LOOM".utf8) + [Header.version &+ 1, sample.type.rawValue, 0, 0], body]
        case 5: return [header, body] + (0..<below(5)).map { _ in bytes(below(32)) }
        case 6 where largeFrames: return [header, body, Array(repeating: 0xAB, count: 1 << 20)]
        default: break
        }
        return [header, body]
    }

    /// A mutated copy of a file: bit flips, a truncation, bytes overwritten with extreme values,
    /// or a copied range (which duplicates protobuf fields and npy header text).
    public mutating func mutate(_ file: [UInt8]) -> [UInt8] {
        var b = file
        guard !b.isEmpty else { return bytes(below(64)) }
        switch below(5) {
        case 0:
            for _ in 0...below(8) { let i = below(b.count); b[i] ^= UInt8(1 << below(8)) }
        case 1:
            b = Array(b.prefix(below(b.count)))
        case 2:
            let at = below(b.count)
            for k in 0..<min(8, b.count - at) { b[at + k] = [0xFF, 0x7F, 0x00, 0x80, 0x01][below(5)] }
        case 3:
            let from = below(b.count), to = below(b.count), n = min(below(64) + 1, b.count - max(from, to))
            if n > 0 { for k in 0..<n { b[to + k] = b[from + k] } }
        default:
            // A varint or a header digit made huge.
            let at = below(b.count)
            b.replaceSubrange(at..<at, with: [0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0x7F])
        }
        return b
    }
}
