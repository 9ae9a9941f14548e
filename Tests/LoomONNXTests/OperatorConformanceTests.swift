import Foundation
import LoomONNX
import LoomTensor
import LoomTestSupport
import Testing

/// The operator cases in Tests/Fixtures/ops: each graph run by Loom against onnxruntime's
/// outputs, run again on shared rows (bitwise the same), and its reverse pass against finite
/// differences of Loom's own forward. `scripts/conformance/make_op_cases` regenerates them.
struct OperatorCase: CustomStringConvertible, Sendable {
    let name: String
    var directory: String { Repository.fixture("ops/" + name) }
    var description: String { name }

    static var all: [OperatorCase] {
        let names = (try? FileManager.default.contentsOfDirectory(atPath: Repository.fixture("ops"))) ?? []
        return names.sorted().filter { FileManager.default.fileExists(atPath: Repository.fixture("ops/\($0)/case.json")) }.map(OperatorCase.init)
    }

    var json: [String: Any] {
        get throws { try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: directory + "/case.json"))) as! [String: Any] }
    }
    var x: Tensor<Float> { get throws { try NpyArray.read(path: directory + "/x.npy").floatTensor() } }
}

@Suite("operators against onnxruntime (Tests/Fixtures/ops)")
struct OperatorConformanceTests {
    @Test("the fixtures are there")
    func present() {
        #expect(OperatorCase.all.count >= 40)
    }

    @Test("forward: every output matches onnxruntime's", arguments: OperatorCase.all)
    func forward(_ c: OperatorCase) throws {
        let model = try ONNXModel(path: c.directory + "/model.onnx")
        let outputs = try model.run([try c.x])
        let count = try c.json["outputs"] as! Int
        #expect(outputs.count == count)
        for (k, y) in outputs.enumerated() {
            let expected = try NpyArray.read(path: c.directory + "/y\(k).npy").floatTensor()
            #expect(y.shape == expected.shape, "output \(k) shape")
            guard y.shape == expected.shape else { continue }
            var worst: Float = 0
            for i in 0..<y.count { worst = max(worst, abs(y.storage[i] - expected.storage[i]) / (1 + abs(expected.storage[i]))) }
            #expect(worst <= 2e-6, "output \(k) differs from onnxruntime's by up to \(worst) (relative)")
        }
    }

    @Test("shared rows: running on distinct rows and gathering gives the same bits as the full batch", arguments: OperatorCase.all)
    func sharedRows(_ c: OperatorCase) throws {
        let model = try ONNXModel(path: c.directory + "/model.onnx")
        let x = try c.x
        let rows = [0, 1, 1, 0, 1]
        let full = try model.run([x.gatherRows(rows)])
        let shared = try model.run(shared: x, rows: rows, others: [])
        #expect(shared.map(\.shape) == full.map(\.shape))
        #expect(zip(shared, full).allSatisfy { $0.storage == $1.storage }, "row sharing changed the result")
        // Each operator here acts row by row, so sharing holds, except where the batch axis moves.
        // (A recurrent layer takes (sequence, batch, features): the Transpose before it moves the batch.)
        let movesBatch = c.name == "expand_rank_up" || c.name.hasPrefix("lstm") || c.name.hasPrefix("gru")
        // (A shape computed from X that feeds the data, as ConstantOfShape's does, keeps the model unshared: the safe choice.)
        #expect(model.sharesRows != (c.name == "constant_of_shape"))
        #expect((model.rowSharingFallbacks == 0) != movesBatch, "fallbacks: \(model.rowSharingFallbacks)")
    }

    @Test(
        "reverse: the gradient matches finite differences of the forward pass", arguments: OperatorCase.all.filter { (try? $0.json["grad"] as? Bool) == true })
    func gradient(_ c: OperatorCase) throws {
        let model = try ONNXModel(path: c.directory + "/grad.onnx")
        let x = try c.x
        let example = Array(x.storage[0..<(x.count / x.shape[0])])
        let shape = Array(x.shape.dropFirst())
        // With the reference equal to the example every rule falls back to the plain gradient.
        let pass = try model.deepLift(x: Tensor(shape: [2] + shape, storage: example + example), others: [], target: 0)
        let gradient = Array(pass.multipliers.storage[0..<example.count])
        func f(_ v: [Float]) throws -> Float { try model.run([Tensor(shape: [1] + shape, storage: v)])[0].storage[0] }
        let h: Float = 1e-2
        var checked = 0
        for i in 0..<example.count {
            var up = example, down = example
            up[i] += h
            down[i] -= h
            let y0 = try f(example), yUp = try f(up), yDown = try f(down)
            let forward = (yUp - y0) / h, backward = (y0 - yDown) / h
            // A kink within h (ReLU-like corners, clip bounds, a Where's switch): no derivative to compare.
            guard abs(forward - backward) <= 0.05 * (abs(forward) + abs(backward)) + 1e-2 else { continue }
            let central = (yUp - yDown) / (2 * h)
            #expect(abs(gradient[i] - central) <= 5e-3 + 5e-3 * abs(central), "element \(i): reverse \(gradient[i]), finite differences \(central)")
            checked += 1
        }
        #expect(checked >= example.count / 2, "most elements are checked (\(checked) of \(example.count))")
    }

    /// The activations tangermeme 1.6 registers as non-linear modules take the rescale rule.
    static let rescaled = ["elu", "leaky_relu", "selu", "celu", "gelu", "gelu_tanh", "mish", "clip_relu6", "prelu"]

    @Test(
        "rescale rule: contributions add up to the output's difference from the reference (summation to delta)",
        arguments: rescaled)
    func summationToDelta(_ name: String) throws {
        let c = OperatorCase(name: name)
        let model = try ONNXModel(path: c.directory + "/grad.onnx")
        let x = try c.x
        let n = x.count / x.shape[0]
        let example = Array(x.storage[0..<n]), reference = Array(x.storage[n..<(2 * n)])
        let shape = Array(x.shape.dropFirst())
        let pass = try model.deepLift(x: Tensor(shape: [2] + shape, storage: example + reference), others: [], target: 0)
        var sum: Float = 0
        for i in 0..<n { sum += (example[i] - reference[i]) * pass.multipliers.storage[i] }
        let delta = pass.outputs[0] - pass.outputs[1]
        #expect(abs(delta) > 1e-3, "the example and the reference differ")
        #expect(abs(sum - delta) <= 1e-4 * max(1, abs(delta)), "Σ Δx·m = \(sum), Δy = \(delta)")
    }
}
