import LoomONNX
import LoomTensor
import LoomTestSupport
import Testing

/// Loads a model built by `build` (inputs X (batch, 2, 3) and a (batch, 1)).
func sharedRowModel(_ build: (inout ONNXBuilder) -> Void) throws -> ONNXModel {
    let dir = TemporaryDirectory()
    defer { dir.remove() }
    var b = ONNXBuilder()
    b.input("X", [nil, 2, 3])
    b.input("a", [nil, 1])
    b.output("y")
    build(&b)
    try b.write(to: dir.file("m.onnx"))
    return try ONNXModel(path: dir.file("m.onnx"))
}

/// A model whose X-only part mixes rows in a way only the values at run time show (`kind`:
/// softmax0, reduce0, transpose, constReshape or bigConstant), flattened and summed, plus the arg.
func rowMixingModel(_ kind: String) throws -> ONNXModel {
    try sharedRowModel { b in
        switch kind {
        case "softmax0":
            b.node("Softmax", ["X"], ["t"], [.int("axis", 0)])
        case "reduce0":
            b.initializer("axes", shape: [1], ints: [0])
            b.node("ReduceSum", ["X", "axes"], ["s"], [.int("keepdims", 1)])
            b.node("Sub", ["X", "s"], ["t"])
        case "transpose":
            b.node("Transpose", ["X"], ["tt"], [.ints("perm", [1, 0, 2])])
            b.node("Transpose", ["tt"], ["t"], [.ints("perm", [1, 0, 2])])
        case "constReshape":
            // A reshape with the batch size written in: only correct for a batch of 5.
            b.initializer("shape", shape: [3], ints: [5, 2, 3])
            b.node("Reshape", ["X", "shape"], ["t"])
        default:
            // A constant with a batch-sized leading axis broadcast against X.
            b.initializer("k", shape: [5, 2, 3], values: noise(30, seed: 6))
            b.node("Mul", ["X", "k"], ["t"])
        }
        b.initializer("f", shape: [2], ints: [0, -1])
        b.node("Reshape", ["t", "f"], ["flat"])
        b.initializer("one", shape: [6, 1], values: [Float](repeating: 1, count: 6))
        b.node("MatMul", ["flat", "one"], ["h"])
        b.node("Add", ["h", "a"], ["y"])
    }
}

/// Runs a model both ways on 2 distinct sequences spread over 5 examples; returns (shared, expanded) outputs.
func bothWays(_ model: ONNXModel) throws -> ([Float], [Float]) {
    let x = Tensor<Float>(shape: [2, 2, 3], storage: noise(12, seed: 9))
    let rows = [0, 0, 0, 1, 1]
    let a = Tensor<Float>(shape: [5, 1], storage: [1, 2, 3, 4, 5])
    let shared = try model.run(shared: x, rows: rows, others: [a])[0]
    let plain = try model.run([x.gatherRows(rows), a])[0]
    #expect(shared.shape == plain.shape)
    return (shared.storage, plain.storage)
}

@Suite("computing the X-only part once per distinct sequence")
struct SharedRowTests {
    @Test("the exporter's flatten + Gemm, then the args: shared, and equal to the plain run")
    func flattenDense() throws {
        let m = try sharedRowModel { b in
            b.node("Shape", ["X"], ["s"])
            b.node("Constant", [], ["zero"], [.intTensor("value", shape: [], values: [0])])
            b.node("Gather", ["s", "zero"], ["n"], [.int("axis", 0)])
            b.node("Constant", [], ["ax"], [.intTensor("value", shape: [1], values: [0])])
            b.node("Unsqueeze", ["n", "ax"], ["n1"])
            b.node("Constant", [], ["m1"], [.intTensor("value", shape: [1], values: [-1])])
            b.node("Concat", ["n1", "m1"], ["shape"], [.int("axis", 0)])
            b.node("Reshape", ["X", "shape"], ["flat"])
            b.initializer("w", shape: [3, 6], values: noise(18, seed: 4))
            b.initializer("c", shape: [3], values: [0.1, 0.2, 0.3])
            b.node("Gemm", ["flat", "w", "c"], ["h"], [.int("transB", 1)])
            b.node("Mul", ["h", "a"], ["y"])
        }
        #expect(m.sharesRows)
        let (s, p) = try bothWays(m)
        #expect(close(s, p))
        #expect(m.rowSharingFallbacks == 0, "a row-wise graph never falls back")
    }

    @Test("a conv tower with relu and a residual add, then a concat with the args")
    func tower() throws {
        let m = try sharedRowModel { b in
            b.initializer("w", shape: [2, 2, 3], values: noise(12, seed: 5))
            b.node("Conv", ["X", "w"], ["c"], [.ints("pads", [1, 1])])
            b.node("Relu", ["c"], ["r"])
            b.node("Add", ["r", "X"], ["res"])
            b.initializer("axes", shape: [1], ints: [2])
            b.node("ReduceMean", ["res", "axes"], ["mean"], [.int("keepdims", 0)])
            b.node("Concat", ["mean", "a"], ["y"], [.int("axis", 1)])
        }
        #expect(m.sharesRows)
        let (s, p) = try bothWays(m)
        #expect(close(s, p))
        #expect(m.rowSharingFallbacks == 0)
    }

    @Test(
        "operators that mix rows fall back to the plain run, with the same result",
        arguments: ["softmax0", "reduce0", "transpose", "constReshape", "bigConstant"])
    func fallbacks(kind: String) throws {
        let m = try rowMixingModel(kind)
        let (s, p) = try bothWays(m)
        #expect(s == p, "the fallback is the plain run itself")
        #expect(m.rowSharingFallbacks == 1, "the batch was recomputed the plain way")
    }

    @Test("a model whose shape metadata feeds the batch-wide part does not share")
    func metadataCrossing() throws {
        let m = try sharedRowModel { b in
            b.node("Shape", ["X"], ["s"])
            b.initializer("i", shape: [1], ints: [0])
            b.node("Gather", ["s", "i"], ["n"])
            b.initializer("r", shape: [1], ints: [1])
            b.node("Concat", ["n", "r"], ["shape"], [.int("axis", 0)])
            b.node("Reshape", ["a", "shape"], ["y"])
        }
        #expect(!m.sharesRows)
        let (s, p) = try bothWays(m)
        #expect(s == p)
    }

    @Test(
        "a shape read past the batch axis may feed the batch-wide part (BPNet's classic export trims its control track by X's length)",
        arguments: ["gather", "shapeStart"])
    func shapePastTheBatch(_ how: String) throws {
        let m = try sharedRowModel { b in
            // y = Relu(X) flattened to 6, times a broadcast over a tiled to X's length: the
            // tiling count comes from Shape(X), past the batch axis.
            if how == "gather" {
                b.node("Shape", ["X"], ["s"])
                b.initializer("i", shape: [1], ints: [2])
                b.node("Gather", ["s", "i"], ["len"])
            } else {
                b.node("Shape", ["X"], ["len"], [.int("start", 2)])
            }
            b.initializer("one", shape: [1], ints: [1])
            b.node("Concat", ["one", "len"], ["reps"], [.int("axis", 0)])
            b.node("Tile", ["a", "reps"], ["at"]) // (batch, 3)
            b.node("Relu", ["X"], ["r"])
            b.initializer("flat", shape: [2], ints: [0, 6])
            b.node("Reshape", ["r", "flat"], ["rf"]) // (batch, 6)
            b.node("Concat", ["rf", "at"], ["y"], [.int("axis", 1)])
        }
        #expect(m.sharesRows)
        let (s, p) = try bothWays(m)
        #expect(s == p)
        #expect(m.rowSharingFallbacks == 0)
    }
}
