import LoomONNX
import LoomTensor
import LoomTestSupport
import Testing

/// A direct, loop-by-loop 1-D convolution, the reference for the BLAS lowerings.
func naiveConv(
    x: [Float], n: Int, c: Int, l: Int, w: [Float], m: Int, k: Int, bias: [Float]?,
    pads: (Int, Int), stride: Int, dilation: Int, group: Int
) -> (shape: [Int], values: [Float]) {
    let cg = c / group, mg = m / group
    let out = (l + pads.0 + pads.1 - dilation * (k - 1) - 1) / stride + 1
    var y = [Float](repeating: 0, count: n * m * out)
    for b in 0..<n {
        for f in 0..<m {
            for j in 0..<out {
                let g = f / mg
                var s = bias?[f] ?? 0
                for ci in 0..<cg {
                    for t in 0..<k {
                        let pos = j * stride + t * dilation - pads.0
                        if pos >= 0 && pos < l { s += w[(f * cg + ci) * k + t] * x[(b * c + g * cg + ci) * l + pos] }
                    }
                }
                y[(b * m + f) * out + j] = s
            }
        }
    }
    return ([n, m, out], y)
}

/// Deterministic pseudo-random floats in [-1, 1).
func noise(_ count: Int, seed: UInt64) -> [Float] {
    var s = seed &* 6364136223846793005 &+ 1442695040888963407
    return (0..<count).map { _ in
        s = s &* 6364136223846793005 &+ 1442695040888963407
        return Float(Int64(bitPattern: s >> 11) % 2000) / 1000 - 1
    }
}

@Suite("BLAS-backed operators")
struct LinearOpTests {
    @Test("Gemm with transB, alpha, beta and a broadcast bias")
    func gemm() throws {
        let a = Feed("a", [2, 3], [1, 2, 3, 4, 5, 6])
        let y = try runOp("Gemm", [a], extraInputs: ["w", "c"], attributes: [.int("transB", 1), .float("alpha", 2), .float("beta", 0.5)]) {
            $0.initializer("w", shape: [2, 3], values: [1, 0, 1, 0, 1, 0])
            $0.initializer("c", shape: [2], values: [10, 20])
        }
        // A·Wᵀ = [[4, 2], [10, 5]]; 2·that + 0.5·[10, 20].
        #expect(y.shape == [2, 2])
        #expect(y.storage == [13, 14, 25, 20])
    }

    @Test("Gemm with transA and float_data weights")
    func gemmTransA() throws {
        let y = try runOp("Gemm", [Feed("a", [3, 2], [1, 4, 2, 5, 3, 6])], extraInputs: ["w"], attributes: [.int("transA", 1)]) {
            $0.initializer("w", shape: [3, 1], values: [1, 1, 1], asFloatData: true)
        }
        #expect(y.shape == [2, 1])
        #expect(y.storage == [6, 15])
    }

    @Test("MatMul: 2-D, batched with a shared right side, and broadcast batches")
    func matmul() throws {
        let y = try runOp("MatMul", [Feed("a", [2, 3], [1, 2, 3, 4, 5, 6]), Feed("b", [3, 2], [1, 0, 0, 1, 1, 1])])
        #expect(y.storage == [4, 5, 10, 11])
        let batched = try runOp("MatMul", [Feed("a", [2, 1, 2], [1, 2, 3, 4]), Feed("b", [2, 1], [10, 1])])
        #expect(batched.shape == [2, 1, 1])
        #expect(batched.storage == [12, 34])
        let both = try runOp("MatMul", [Feed("a", [2, 1, 2], [1, 2, 3, 4]), Feed("b", [2, 2, 1], [1, 0, 0, 1])])
        #expect(both.shape == [2, 1, 1])
        #expect(both.storage == [1, 4])
        let vector = try runOp("MatMul", [Feed("a", [3], [1, 2, 3]), Feed("b", [3, 2], [1, 0, 0, 1, 1, 1])])
        #expect(vector.shape == [2])
        #expect(vector.storage == [4, 5])
    }

    @Test("Conv: a hand-computed edge filter with padding")
    func convHand() throws {
        let y = try runOp(
            "Conv", [Feed("x", [1, 1, 5], [1, 2, 4, 8, 16])], extraInputs: ["w", "b"],
            attributes: [.ints("pads", [1, 1]), .ints("kernel_shape", [3])]
        ) {
            $0.initializer("w", shape: [1, 1, 3], values: [1, 0, -1])
            $0.initializer("b", shape: [1], values: [0.5])
        }
        // y[j] = x[j-1] - x[j+1] + 0.5 with zeros outside.
        #expect(y.shape == [1, 1, 5])
        #expect(y.storage == [-1.5, -2.5, -5.5, -11.5, 8.5])
    }

    @Test(
        "Conv matches a direct loop: both lowerings, stride, dilation, groups, padding",
        arguments: [
            (c: 4, m: 6, k: 3, l: 17, pads: (1, 1), stride: 1, dilation: 1, group: 1), // im2col
            (c: 16, m: 8, k: 3, l: 20, pads: (2, 2), stride: 1, dilation: 2, group: 1), // tap-wise
            (c: 16, m: 8, k: 5, l: 23, pads: (0, 3), stride: 2, dilation: 1, group: 1), // strided im2col
            (c: 8, m: 4, k: 3, l: 12, pads: (1, 1), stride: 1, dilation: 1, group: 2), // groups
            (c: 32, m: 4, k: 7, l: 40, pads: (3, 3), stride: 1, dilation: 3, group: 2) // tap-wise groups
        ])
    func convRandom(shape: (c: Int, m: Int, k: Int, l: Int, pads: (Int, Int), stride: Int, dilation: Int, group: Int)) throws {
        let n = 3
        let x = noise(n * shape.c * shape.l, seed: 1)
        let w = noise(shape.m * shape.c / shape.group * shape.k, seed: 2)
        let bias = noise(shape.m, seed: 3)
        let want = naiveConv(
            x: x, n: n, c: shape.c, l: shape.l, w: w, m: shape.m, k: shape.k, bias: bias,
            pads: shape.pads, stride: shape.stride, dilation: shape.dilation, group: shape.group)
        let y = try runOp(
            "Conv", [Feed("x", [n, shape.c, shape.l], x)], extraInputs: ["w", "b"],
            attributes: [
                .ints("pads", [shape.pads.0, shape.pads.1]), .ints("strides", [shape.stride]),
                .ints("dilations", [shape.dilation]), .int("group", shape.group)
            ]
        ) {
            $0.initializer("w", shape: [shape.m, shape.c / shape.group, shape.k], values: w)
            $0.initializer("b", shape: [shape.m], values: bias)
        }
        #expect(y.shape == want.shape)
        #expect(close(y.storage, want.values, tol: 1e-5))
    }

    @Test("Conv with SAME_UPPER keeps the length")
    func convSame() throws {
        let y = try runOp("Conv", [Feed("x", [1, 1, 4], [1, 2, 3, 4])], extraInputs: ["w"], attributes: [.string("auto_pad", "SAME_UPPER")]) {
            $0.initializer("w", shape: [1, 1, 2], values: [1, 1])
        }
        #expect(y.storage == [3, 5, 7, 4])
    }

    @Test("MaxPool: kernel 2 stride 2, ceil mode, padding")
    func maxPool() throws {
        let x = Feed("x", [1, 2, 5], [1, 3, 2, 5, 4, -1, -3, -2, -5, -4])
        let y = try runOp("MaxPool", [x], attributes: [.ints("kernel_shape", [2]), .ints("strides", [2])])
        #expect(y.shape == [1, 2, 2])
        #expect(y.storage == [3, 5, -1, -2])
        let ceil = try runOp("MaxPool", [x], attributes: [.ints("kernel_shape", [2]), .ints("strides", [2]), .int("ceil_mode", 1)])
        #expect(ceil.storage == [3, 5, 4, -1, -2, -4])
        let padded = try runOp("MaxPool", [x], attributes: [.ints("kernel_shape", [3]), .ints("pads", [1, 1])])
        #expect(padded.storage == [3, 3, 5, 5, 5, -1, -1, -2, -2, -4])
        // PyTorch's MaxPool1d(3) on length 100, as the ConvPoolDense model uses it.
        let long = try runOp("MaxPool", [Feed("x", [1, 1, 100], (0..<100).map(Float.init))], attributes: [.ints("kernel_shape", [3]), .ints("strides", [3])])
        #expect(long.shape == [1, 1, 33])
        #expect(long.storage.last == 98)
    }

    @Test("BatchNormalization at inference")
    func batchNorm() throws {
        let y = try runOp("BatchNormalization", [Feed("x", [1, 2, 2], [1, 2, 3, 4])], extraInputs: ["s", "b", "m", "v"]) {
            $0.initializer("s", shape: [2], values: [2, 1])
            $0.initializer("b", shape: [2], values: [0, 1])
            $0.initializer("m", shape: [2], values: [1, 3])
            $0.initializer("v", shape: [2], values: [4 - 1e-5, 1 - 1e-5])
        }
        #expect(close(y.storage, [0, 1, 1, 2]))
    }
}
