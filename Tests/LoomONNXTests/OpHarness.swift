import LoomONNX
import LoomTensor
import LoomTestSupport
import Testing

/// A float input of a one-node (or few-node) test model.
struct Feed {
    var name: String
    var shape: [Int]
    var values: [Float]
    init(_ name: String, _ shape: [Int], _ values: [Float]) { self.name = name; self.shape = shape; self.values = values }
}

/// Writes a model built by `build` to a temporary .onnx file, loads it with Loom and runs it on `feeds`.
func runModel(_ feeds: [Feed], opset: Int = 17, outputs: [String] = ["y"], _ build: (inout ONNXBuilder) -> Void) throws -> [Tensor<Float>] {
    let dir = TemporaryDirectory()
    defer { dir.remove() }
    var b = ONNXBuilder(opset: opset)
    for f in feeds { b.input(f.name, f.shape.map { Optional($0) }) }
    for o in outputs { b.output(o) }
    build(&b)
    try b.write(to: dir.file("m.onnx"))
    let model = try ONNXModel(path: dir.file("m.onnx"))
    return try model.run(feeds.map { Tensor(shape: $0.shape, storage: $0.values) })
}

/// Runs one node with inputs `feeds` (and any extra initializers) and returns its single output.
func runOp(
    _ op: String, _ feeds: [Feed], opset: Int = 17, extraInputs: [String] = [], attributes: [ONNXBuilder.Attribute] = [],
    initializers: (inout ONNXBuilder) -> Void = { _ in }
) throws -> Tensor<Float> {
    try runModel(feeds, opset: opset) { b in
        initializers(&b)
        b.node(op, feeds.map(\.name) + extraInputs, ["y"], attributes)
    }[0]
}

/// Whether two float arrays agree to within a tolerance.
func close(_ a: [Float], _ b: [Float], tol: Float = 1e-5) -> Bool {
    a.count == b.count && zip(a, b).allSatisfy { abs($0 - $1) <= tol * max(1, abs($1)) }
}
