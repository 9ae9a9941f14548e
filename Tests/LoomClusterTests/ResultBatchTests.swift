import Foundation
import LoomTensor
import Testing
import ZeroMQ

@testable import LoomCluster

@Suite("a worker's result batches")
struct ResultBatchTests {
    func leaves(_ rows: Int, value: Float) -> [(index: [Int], tensor: Tensor<Float>)] {
        [(index: [0], tensor: Tensor(shape: [rows, 2], storage: [Float](repeating: value, count: rows * 2)))]
    }

    @Test("a shard slower than the batching delay is due as soon as it is added, so its worker asks for more at once")
    func slowShardIsDue() throws {
        var batch = ResultBatch(jobId: "job", worker: "w")
        // A shard that began computing 3 ms ago (longer than `maxDelay`) and has just finished.
        try batch.add(shard: 0, batches: [leaves(4, value: 1)], began: Date().addingTimeInterval(-3 * ResultBatch.maxDelay / 2))
        defer { for case .owned(let b) in batch.frames { free(b.baseAddress) } }
        #expect(batch.isDue)
    }

    @Test("quick shards wait for each other, within the delay, and go in one message in order")
    func quickShardsBatch() throws {
        var batch = ResultBatch(jobId: "job", worker: "w")
        try batch.add(shard: 5, batches: [leaves(3, value: 1), leaves(2, value: 2)], began: Date())
        try batch.add(shard: 6, batches: [leaves(4, value: 3)], began: Date())
        defer { for case .owned(let b) in batch.frames { free(b.baseAddress) } }
        #expect(!batch.isDue)
        #expect(batch.shards == [5, 6])
        #expect(batch.bytes == (5 + 4) * 2 * 4)
        // The first shard's two batches are concatenated along the examples, in order.
        guard case .owned(let first) = batch.frames[0] else { Issue.record("expected an owned frame"); return }
        let floats = Array(UnsafeRawBufferPointer(first).bindMemory(to: Float.self))
        #expect(floats == [Float](repeating: 1, count: 6) + [Float](repeating: 2, count: 4))
    }
}
