import Foundation
import LoomTestSupport
import Testing

@testable import LoomCluster

/// Decodes a body the way a receiver does.
private func decode(_ type: MessageType, _ body: [UInt8], dataFrames: Int) throws -> WireMessage {
    try body.withUnsafeBytes { try WireMessage.decode(type, body: $0, dataFrames: dataFrames, peer: "test peer") }
}

@Suite("the typed wire protocol (codec)")
struct WireMessageTests {
    @Test("every message type has a sample, and each decodes to itself", arguments: WireMessage.samples)
    func roundTrip(_ m: WireMessage) throws {
        #expect(try decode(m.type, m.body, dataFrames: m.dataFrameCount ?? 2) == m)
    }

    @Test("the samples cover every message type, once each")
    func samplesCoverEveryType() {
        #expect(WireMessage.samples.map(\.type) == MessageType.allCases)
    }

    @Test("every truncation of every message is refused with an error, never a trap", arguments: WireMessage.samples)
    func truncations(_ m: WireMessage) throws {
        let body = m.body
        for n in 0..<body.count {
            #expect(throws: ProtocolError.self) { try decode(m.type, Array(body.prefix(n)), dataFrames: m.dataFrameCount ?? 2) }
        }
    }

    @Test("a byte after the last field is refused", arguments: WireMessage.samples)
    func trailingBytes(_ m: WireMessage) throws {
        #expect(throws: ProtocolError.self) { try decode(m.type, m.body + [0], dataFrames: m.dataFrameCount ?? 2) }
    }

    @Test("a wrong number of data frames is refused", arguments: WireMessage.samples.filter { $0.dataFrameCount != nil })
    func dataFrames(_ m: WireMessage) throws {
        let n = m.dataFrameCount!
        #expect(throws: ProtocolError.self) { try decode(m.type, m.body, dataFrames: n + 1) }
        if n > 0 { #expect(throws: ProtocolError.self) { try decode(m.type, m.body, dataFrames: n - 1) } }
    }

    @Test("every bit flip of every message decodes or is refused; none traps", arguments: WireMessage.samples)
    func bitFlips(_ m: WireMessage) throws {
        let body = m.body
        for bit in 0..<(body.count * 8) {
            var b = body
            b[bit / 8] ^= 1 << (bit % 8)
            for type in MessageType.allCases {
                _ = try? decode(type, b, dataFrames: m.dataFrameCount ?? 2)
            }
        }
    }

    @Test("extreme field values are refused by name")
    func extremeValues() throws {
        func refused(_ m: WireMessage, _ frames: Int = 0, saying text: String) {
            do {
                _ = try decode(m.type, m.body, dataFrames: frames)
                Issue.record("\(m) was accepted")
            } catch {
                #expect("\(error)".contains(text), "\(error)")
            }
        }
        refused(.ready(jobId: "j", credit: WireMessage.maxCredit + 1, computed: []), saying: "credit")
        refused(.shard(jobId: "j", shards: [.init(shard: -1, rows: [])]), 1, saying: "shard is -1")
        refused(.shard(jobId: "j", shards: [.init(shard: 0, rows: [-5])]), 1, saying: "X rows is -5")
        refused(.result(jobId: "j", worker: "w", shards: [.init(shard: 0, leaves: [.init(index: [0], shape: [1 << 40, 1 << 40])])]), 1, saying: "overflows")
        refused(.result(jobId: "j", worker: "w", shards: [.init(shard: 0, leaves: [.init(index: [0], shape: [-1])])]), 1, saying: "per-example shape is -1")
        refused(.error(jobId: "j", shard: -7, message: ""), saying: "shard is -7")
        refused(.finish(.init(jobId: "j", workers: -1, bytesToWorkers: 0, workersLost: 0, leasesExpired: 0, shardsReissued: 0)), saying: "workers is -1")
        refused(
            .model(sha256: String(repeating: "0", count: 64), files: [.init(name: "model.onnx", bytes: 1), .init(name: "../etc/passwd", bytes: 1)]), 2,
            saying: "not a plain file name")
        refused(.model(sha256: String(repeating: "0", count: 64), files: [.init(name: "weights.bin", bytes: 1)]), 1, saying: "model.onnx")
        refused(.needModel(sha256: "not-a-hash"), saying: "sha256")
        refused(.heartbeat(job: String(repeating: "x", count: 5000)), saying: "more than")
        // A bool that is neither 0 nor 1.
        var end = WireMessage.end(ok: true, reason: "").body
        end[0] = 7
        #expect(throws: ProtocolError.self) { try decode(.end, end, dataFrames: 0) }
        // A count far larger than the frame: refused before anything is allocated.
        #expect(throws: ProtocolError.self) { try decode(.ack, Array("\u{1}\0\0\0j".utf8) + [0xff, 0xff, 0xff, 0xff], dataFrames: 0) }
        // Text that is not UTF-8.
        #expect(throws: ProtocolError.self) { try decode(.end, [1, 2, 0, 0, 0, 0xff, 0xfe], dataFrames: 0) }
    }

    @Test("headers: wrong magic, version, reserved bytes or type are refused")
    func headers() throws {
        var h = Header(.ready).bytes
        #expect(try h.withUnsafeBytes { try Header.parse($0, peer: "p") } == Header(.ready))
        h[4] = Header.version - 1
        #expect(throws: ProtocolError.version(peer: "p", Header.version - 1)) { try h.withUnsafeBytes { try Header.parse($0, peer: "p") } }
        for bad in [
            Array("LOOK".utf8) + [Header.version, 5, 0, 0], Array("LOOM".utf8) + [Header.version, 11, 0, 0],
            Array("LOOM".utf8) + [Header.version, 5, 1, 0], Array("LOOM".utf8) + [Header.version, 5, 0]
        ] {
            #expect(throws: ProtocolError.self) { try bad.withUnsafeBytes { try Header.parse($0, peer: "p") } }
        }
    }

    @Test("docs/protocol.md's message table is the one the codec generates")
    func documentation() throws {
        let doc = try String(contentsOfFile: Repository.root + "/docs/protocol.md", encoding: .utf8)
        let table = WireMessage.documentationTable
        #expect(doc.contains(table), "docs/protocol.md's message table has drifted from the codec; put this in its place:\n\(table)")
        #expect(doc.contains("protocol version \(Header.version)") || doc.contains("(version \(Header.version))"))
    }
}
