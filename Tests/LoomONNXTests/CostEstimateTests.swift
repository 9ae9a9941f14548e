import LoomONNX
import LoomTensor
import LoomTestSupport
import Testing

@Suite("estimating one example's work, for sizing shards")
struct CostEstimateTests {
    @Test("Gemm counts its multiply-adds (K per output element) plus its outputs; elementwise steps count their outputs")
    func gemm() throws {
        let m = try sharedRowModel { b in
            b.node("Flatten", ["X"], ["flat"]) // 6 elements
            b.initializer("w", shape: [3, 6], values: noise(18, seed: 4))
            b.node("Gemm", ["flat", "w"], ["h"], [.int("transB", 1)]) // 3 outputs, K = 6
            b.node("Mul", ["h", "a"], ["y"]) // 3 outputs
        }
        let x = Tensor<Float>(shape: [1, 2, 3], storage: noise(6, seed: 1))
        let a = Tensor<Float>(shape: [1, 1], storage: [2])
        #expect(try m.operationsPerExample(feeds: [x, a]) == 6 + (3 + 3 * 6) + 3)
        // The output y: 3 elements per example (the same for a batch of two).
        let x2 = Tensor<Float>(shape: [2, 2, 3], storage: noise(12, seed: 1))
        let a2 = Tensor<Float>(shape: [2, 1], storage: [2, 3])
        #expect(try m.costPerExample(feeds: [x2, a2]) == CostEstimate(operations: 6 + (3 + 3 * 6) + 3, outputElements: 3))
    }

    @Test("Conv counts (C_in / group) × kernel multiply-adds per output element")
    func conv() throws {
        let m = try sharedRowModel { b in
            b.initializer("w", shape: [4, 2, 3], values: noise(24, seed: 5))
            b.node("Conv", ["X", "w"], ["c"], [.ints("pads", [1, 1])]) // (4, 3) outputs, 2 × 3 taps each
            b.node("ReduceSum", ["c"], ["s"], [.int("keepdims", 0)])
            b.node("Mul", ["s", "a"], ["y"])
        }
        let x = Tensor<Float>(shape: [1, 2, 3], storage: noise(6, seed: 1))
        let a = Tensor<Float>(shape: [1, 1], storage: [2])
        #expect(try m.operationsPerExample(feeds: [x, a]) == 12 + 12 * 6 + 1 + 1)
    }
}
