import LoomProduct
import LoomTensor
import Testing

@Suite("index space and shards")
struct IndexSpaceTests {
    @Test("pairwise zips the args: example (i, j) uses X[i] and row j of every arg")
    func pairwise() throws {
        let s = try IndexSpace(mode: .pairwise, sequences: 3, argLengths: [4, 4])
        #expect(s.axes == [3, 4])
        #expect(s.count == 12)
        #expect(s.coordinates(of: 0).x == 0 && s.coordinates(of: 0).args == [0, 0])
        #expect(s.coordinates(of: 5).x == 1 && s.coordinates(of: 5).args == [1, 1])
        #expect(s.coordinates(of: 11).x == 2 && s.coordinates(of: 11).args == [3, 3])
    }

    @Test("product enumerates X-major with the last arg fastest, like itertools.product")
    func product() throws {
        let s = try IndexSpace(mode: .product, sequences: 2, argLengths: [3, 2])
        #expect(s.axes == [2, 3, 2])
        var seen: [[Int]] = []
        for e in 0..<s.count { let c = s.coordinates(of: e); seen.append([c.x] + c.args) }
        var expected: [[Int]] = []
        for i in 0..<2 { for j in 0..<3 { for k in 0..<2 { expected.append([i, j, k]) } } }
        #expect(seen == expected)
    }

    @Test("a batch gathers each example's arg rows and X index as coordinates(of:) gives them, in every mode and range")
    func batchRows() throws {
        for (mode, lengths) in [(ProductMode.product, [3, 2, 4]), (.product, [5]), (.pairwise, [4, 4, 4]), (.product, [])] {
            let s = try IndexSpace(mode: mode, sequences: 3, argLengths: lengths)
            // Arg k's row r holds the value 100 k + r, in two columns.
            var args: [Tensor<Float>] = []
            for (k, n) in lengths.enumerated() {
                var values: [Float] = []
                for r in 0..<n { values += [Float(100 * k + r), Float(100 * k + r)] }
                args.append(Tensor<Float>(shape: [n, 2], storage: values))
            }
            let x = Tensor<Float>(shape: [3, 1, 1], storage: [0, 1, 2])
            for range in [0..<s.count, 1..<min(s.count, 8), max(0, s.count - 5)..<s.count] {
                let (distinct, rows) = s.sequenceRows(for: range)
                let b = s.batch(for: range, distinctX: x.gatherRows(distinct), rows: rows, args: args)
                for (i, e) in range.enumerated() {
                    let c = s.coordinates(of: e)
                    #expect(b.xIndices[b.xRows[i]] == c.x, "\(mode) \(lengths) example \(e)")
                    for k in lengths.indices {
                        #expect(b.args[k].storage[2 * i] == Float(100 * k + c.args[k]), "\(mode) \(lengths) example \(e) arg \(k)")
                    }
                }
            }
        }
    }

    @Test("product with no args is just the sequences")
    func productNoArgs() throws {
        let s = try IndexSpace(mode: .product, sequences: 5, argLengths: [])
        #expect(s.axes == [5])
        #expect(s.coordinates(of: 4).x == 4)
    }

    @Test("refusals: empty X, empty arg, pairwise of different lengths or with no args, overflow")
    func refusals() {
        #expect(throws: IndexSpaceError.self) { try IndexSpace(mode: .product, sequences: 0, argLengths: [2]) }
        #expect(throws: IndexSpaceError.self) { try IndexSpace(mode: .product, sequences: 2, argLengths: [2, 0]) }
        #expect(throws: IndexSpaceError.self) { try IndexSpace(mode: .pairwise, sequences: 2, argLengths: []) }
        #expect(throws: IndexSpaceError.self) { try IndexSpace(mode: .product, sequences: 1 << 30, argLengths: [1 << 30, 1 << 30]) }
        do {
            _ = try IndexSpace(mode: .pairwise, sequences: 2, argLengths: [5, 3], argNames: ["a0.npy", "a1.npy"])
            Issue.record("different lengths must be refused")
        } catch let e as IndexSpaceError {
            #expect(e.message.contains("same length"))
            #expect(e.message.contains("[5, 3]") && e.message.contains("a1.npy"))
        } catch { Issue.record("wrong error \(error)") }
    }

    @Test(
        "shards cover every example once, in order, the last one short",
        arguments: [(15, 8), (16, 8), (1, 32), (60, 7), (5, 1), (32, 32), (33, 32), (0, 4)])
    func shards(examples: Int, batch: Int) throws {
        let plan = try ShardPlan(examples: examples, batchSize: batch)
        #expect(plan.shardCount == (examples + batch - 1) / batch)
        var next = 0
        for s in 0..<plan.shardCount {
            let r = plan.range(of: s)
            #expect(r.lowerBound == next)
            #expect(r.count == (s == plan.shardCount - 1 ? examples - s * batch : batch))
            #expect(r.count >= 1)
            next = r.upperBound
        }
        #expect(next == examples)
    }

    @Test(
        "shards of several batches cover every example once; their batches are the plain plan's batches",
        arguments: [(100, 8, 3), (96, 8, 3), (7, 4, 5), (1, 1, 2), (0, 4, 2)])
    func multiBatchShards(examples: Int, batch: Int, k: Int) throws {
        let plan = try ShardPlan(examples: examples, batchSize: batch, batchesPerShard: k)
        let plain = try ShardPlan(examples: examples, batchSize: batch)
        #expect(plan.shardSize == batch * k)
        #expect(plan.batchCount == plain.shardCount)
        let batches = (0..<plan.shardCount).flatMap { plan.batches(of: $0) }
        #expect(batches == (0..<plain.shardCount).map { plain.range(of: $0) }, "the same batches as one batch per shard")
        for s in 0..<plan.shardCount {
            #expect(plan.batches(of: s).count <= k)
            #expect(plan.batches(of: s).first?.lowerBound == plan.range(of: s).lowerBound)
            #expect(plan.batches(of: s).last?.upperBound == plan.range(of: s).upperBound)
        }
        #expect(throws: IndexSpaceError.self) { try ShardPlan(examples: 10, batchSize: 2, batchesPerShard: 0) }
    }

    @Test("automatic sizing: one batch per shard unless batches are cheap; at least 64 shards when there are enough batches")
    func automaticSize() {
        // Expensive examples (a BPNet deep_lift_shap: ~1e11 operations) stay one batch per shard.
        #expect(ShardPlan.automaticBatchesPerShard(examples: 1_000_000, batchSize: 32, operationsPerExample: 1e11) == 1)
        // No estimate: one batch per shard.
        #expect(ShardPlan.automaticBatchesPerShard(examples: 1_000_000, batchSize: 32, operationsPerExample: nil) == 1)
        // Cheap examples: shards of about 2^27 operations...
        let k = ShardPlan.automaticBatchesPerShard(examples: 10_000_000, batchSize: 32, operationsPerExample: 4096)
        #expect(k == (1 << 27) / (32 * 4096))
        #expect(k == ShardPlan.targetShardOperations / (32 * 4096))
        // ...and of at most 16 MB of results: 64 KB per example makes 8 batches of 32.
        #expect(
            ShardPlan.automaticBatchesPerShard(
                examples: 10_000_000, batchSize: 32, operationsPerExample: 4096,
                resultBytesPerExample: 65536) == (16 << 20) / (32 * 65536))
        #expect(
            ShardPlan.automaticBatchesPerShard(
                examples: 10_000_000, batchSize: 32, operationsPerExample: 4096,
                resultBytesPerExample: Double(1 << 30)) == 1)
        // ...but never fewer than 64 shards of a job with enough batches, and never below one batch.
        let few = ShardPlan.automaticBatchesPerShard(examples: 32 * 640, batchSize: 32, operationsPerExample: 1)
        #expect(few == 10)
        #expect(ShardPlan.automaticBatchesPerShard(examples: 32 * 10, batchSize: 32, operationsPerExample: 1) == 1)
    }

    @Test("a batch size below 1 is refused")
    func badBatch() {
        #expect(throws: IndexSpaceError.self) { try ShardPlan(examples: 10, batchSize: 0) }
    }
}
