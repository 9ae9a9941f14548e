import CLoomVector
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
            (c: 32, m: 4, k: 7, l: 40, pads: (3, 3), stride: 1, dilation: 3, group: 2), // tap-wise groups
            (c: 64, m: 4, k: 9, l: 2000, pads: (4, 4), stride: 2, dilation: 1, group: 1) // a long im2col
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
        // Sums over hundreds of taps cancel: a few of them lose 1e-5 of their size in float32, in any order.
        #expect(close(y.storage, want.values, tol: shape.c / shape.group * shape.k > 100 ? 1e-4 : 1e-5))
    }

    /// OpenBLAS's sgemm gives an element different bits as the matrix sizes change (measured: a
    /// third of a 32-example product differs from the same examples one at a time), so a Conv
    /// calls it per example: an example's result must not depend on its batch (row sharing and
    /// deep-lift-shap's passes rely on it).
    @Test("Conv gives an example the same bits alone as anywhere in a batch, in both lowerings", arguments: [4, 12])
    func convRowIndependence(c: Int) throws {
        let (n, m, k, length) = (5, 8, 5, 41)
        let x = noise(n * c * length, seed: 4), w = noise(m * c * k, seed: 5), bias = noise(m, seed: 6)
        func conv(_ rows: Range<Int>) throws -> [Float] {
            try runOp(
                "Conv", [Feed("x", [rows.count, c, length], Array(x[(rows.lowerBound * c * length)..<(rows.upperBound * c * length)]))],
                extraInputs: ["w", "b"], attributes: [.ints("pads", [2, 2])]
            ) {
                $0.initializer("w", shape: [m, c, k], values: w)
                $0.initializer("b", shape: [m], values: bias)
            }.storage
        }
        let all = try conv(0..<n)
        let per = m * length
        for e in 0..<n {
            let alone = try conv(e..<(e + 1))
            #expect(alone.map(\.bitPattern) == all[(e * per)..<((e + 1) * per)].map(\.bitPattern), "example \(e)")
        }
        #expect(try conv(2..<4).map(\.bitPattern) == all[(2 * per)..<(4 * per)].map(\.bitPattern))
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

    @Test("MaxPool equals the ONNX definition over kernels, strides, dilations, pads and ceil mode, in both C builds")
    func maxPoolGeometries() throws {
        let (rows, length) = (3, 37)
        // Distinct values in a scrambled order (67 is prime to their count).
        let values = (0..<(rows * length)).map { Float(($0 * 67) % (rows * length)) - 50 }
        let x = Feed("x", [1, rows, length], values)
        defer { _ = loom_vector_use(1) }
        let geometries = [1, 2, 3, 4, 5, 8].flatMap { k in
            [1, 2, 3, 4, 8].flatMap { s in [1, 2, 3].flatMap { d in [[0, 0], [1, 0], [2, 2]].flatMap { p in [0, 1].map { (k, s, d, p, $0) } } } }
        }
        for (kernel, stride, dilation, pads, ceil) in geometries {
            guard pads[0] < kernel, pads[1] < kernel else { continue }
            // ONNX's output length; with ceil mode, a window that would start in the right padding is dropped.
            let room = length + pads[0] + pads[1] - ((kernel - 1) * dilation + 1)
            var outLength = (ceil == 1 ? (room + stride - 1) / stride : room / stride) + 1
            if ceil == 1 && (outLength - 1) * stride >= length + pads[0] { outLength -= 1 }
            var expected = [Float]()
            for r in 0..<rows {
                for j in 0..<outLength {
                    let taps = (0..<kernel).map { j * stride - pads[0] + $0 * dilation }.filter { $0 >= 0 && $0 < length }
                    expected.append(taps.map { values[r * length + $0] }.max() ?? -.infinity)
                }
            }
            var results = [[Float]]()
            for level in [0, 1] where loom_vector_use(Int32(level)) == level {
                let y = try runOp(
                    "MaxPool", [x],
                    attributes: [
                        .ints("kernel_shape", [kernel]), .ints("strides", [stride]), .ints("dilations", [dilation]), .ints("pads", pads),
                        .int("ceil_mode", ceil)
                    ])
                results.append(y.storage)
                #expect(y.shape == [1, rows, outLength])
                #expect(y.storage == expected, "kernel \(kernel), stride \(stride), dilation \(dilation), pads \(pads), ceil \(ceil), build \(level)")
            }
            #expect(results.count == 2 && results[0].map(\.bitPattern) == results[1].map(\.bitPattern))
        }
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
