import LoomCluster
import LoomTensor
import Testing

@Suite("X on the wire (XCodec)")
struct XCodecTests {
    /// Random one-hot rows (A = 4) with some all-zero (N) columns.
    func oneHotX(rows: Int, length: Int, seed: UInt64) -> Tensor<Float> {
        var rng = seed
        func next() -> UInt64 {
            rng = rng &* 6364136223846793005 &+ 1442695040888963407
            return rng >> 33
        }
        var storage = [Float](repeating: 0, count: rows * 4 * length)
        for r in 0..<rows {
            for pos in 0..<length {
                let base = Int(next() % 5) // 4: an N column, left all zero
                if base < 4 { storage[(r * 4 + base) * length + pos] = 1 }
            }
        }
        return Tensor(shape: [rows, 4, length], storage: storage)
    }

    @Test("one-hot rows travel as one byte per position (255 for N) and come back bit for bit, any rows in any order")
    func oneHotRoundTrip() throws {
        let x = oneHotX(rows: 7, length: 1003, seed: 42)
        let encoded = XCodec.Encoded(x, as: .oneHot)
        #expect(encoded.rowBytes == 1003)
        #expect(encoded.bytes.contains(255) && encoded.bytes.contains(3))
        let rows = [5, 0, 5, 2]
        let bytes = encoded.rows(rows)
        #expect(bytes == XCodec.encode(x, rows: rows, as: .oneHot))
        let back = try bytes.withUnsafeBytes {
            try XCodec.decode($0, count: rows.count, rowShape: [4, 1003], as: .oneHot, peer: "test")
        }
        let rowSize = 4 * 1003
        for (i, r) in rows.enumerated() {
            #expect(Array(back.storage[(i * rowSize)..<((i + 1) * rowSize)]) == Array(x.storage[(r * rowSize)..<((r + 1) * rowSize)]))
        }
    }

    @Test("a payload of the wrong size is refused naming the peer")
    func wrongSize() {
        let bytes = [UInt8](repeating: 0, count: 10)
        let error = #expect(throws: ProtocolError.self) {
            try bytes.withUnsafeBytes { try XCodec.decode($0, count: 1, rowShape: [4, 11], as: .oneHot, peer: "worker-3") }
        }
        #expect(error?.description.contains("worker-3") == true)
    }
}
