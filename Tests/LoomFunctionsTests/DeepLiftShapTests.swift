import Foundation
import LoomFunctions
import LoomONNX
import LoomTensor
import LoomTestSupport
import Testing

/// The conformance cases that run deep_lift_shap directly.
let attributionCases = [
    "tutorial_pairwise_deep_lift_shap", "loom_convpool_pairwise_deep_lift_shap",
    "loom_residual_product_deep_lift_shap_hypothetical", "loom_softmax_pairwise_deep_lift_shap",
    "loom_sigmoid_tanh_product_deep_lift_shap", "loom_bpnet_count_pairwise_deep_lift_shap"
]

@Suite("deep_lift_shap on the conformance models")
struct DeepLiftShapTests {
    /// The case's model, X, and the first arg row of each input repeated for every sequence.
    func load(_ name: String) throws -> (ONNXModel, Batch) {
        let dir = Repository.conformanceDirectory + "/" + name
        let model = try ONNXModel(path: dir + "/model.onnx")
        let x = try NpyArray.read(path: dir + "/x.npy").floatTensor()
        let n = x.shape[0]
        var args: [Tensor<Float>] = []
        for k in 0..<(model.inputs.count - 1) {
            let a = try NpyArray.read(path: dir + "/a\(k).npy").floatTensor()
            args.append(a.gatherRows([Int](repeating: 0, count: n)))
        }
        return (model, Batch(x: x, args: args, xIndices: Array(0..<n)))
    }

    @Test("convergence deltas stay under 0.001 on every conformance model", arguments: attributionCases)
    func convergence(name: String) throws {
        let (model, batch) = try load(name)
        let targets = (model.outputs.first?.shape?.dropFirst().first ?? 1) ?? 1
        for target in 0..<min(targets, 3) {
            let f = DeepLiftShap(target: target, shuffles: 5, seed: 1, references: nil, hypothetical: false, pairsPerPass: 7)
            let r = try f.attribute(model: model, batch: batch)
            #expect(r.pairs == batch.count * 5)
            #expect(r.worstDelta < 0.001, "target \(target): worst delta \(r.worstDelta)")
            #expect(r.relativeDelta < 0.01)
        }
    }

    @Test("the result does not depend on how pairs are grouped into passes")
    func passSizes() throws {
        let (model, batch) = try load("loom_convpool_pairwise_deep_lift_shap")
        let one = try DeepLiftShap(target: 0, shuffles: 4, seed: 3, references: nil, hypothetical: true, pairsPerPass: 1).attribute(model: model, batch: batch)
            .values
        let many = try DeepLiftShap(target: 0, shuffles: 4, seed: 3, references: nil, hypothetical: true, pairsPerPass: 64).attribute(
            model: model, batch: batch
        ).values
        #expect(one.shape == many.shape)
        #expect(zip(one.storage, many.storage).allSatisfy { abs($0 - $1) <= 1e-6 })
    }

    @Test("given references equal to the shuffles give the shuffled result")
    func givenReferences() throws {
        let (model, batch) = try load("loom_convpool_pairwise_deep_lift_shap")
        let shuffled = DeepLiftShap(target: 1, shuffles: 3, seed: 8, references: nil, hypothetical: false, pairsPerPass: 5)
        let expected = try shuffled.attribute(model: model, batch: batch).values
        // Build the same references by hand: reference r of sequence i is its dinucleotide shuffle seeded 8 + r.
        let (n, a, l) = (batch.x.shape[0], batch.x.shape[1], batch.x.shape[2])
        let refs = Tensor<Float>(shape: [n, 3, a, l]) { out in
            out.initialize(repeating: 0)
            batch.x.storage.withUnsafeBufferPointer { px in
                for i in 0..<n {
                    let codes = DinucleotideShuffle.codes(of: UnsafeBufferPointer(rebasing: px[(i * a * l)..<((i + 1) * a * l)]), alphabetSize: a, length: l)
                    for r in 0..<3 {
                        let s = DinucleotideShuffle.shuffles(of: codes, alphabetSize: a, count: 1, seed: 8 + r)[0]
                        for (pos, c) in s.enumerated() { out[((i * 3 + r) * a + Int(c)) * l + pos] = 1 }
                    }
                }
            }
        }
        let set = try ReferenceSet(refs, file: "refs.npy", sequences: n, alphabetSize: a, length: l)
        let given = DeepLiftShap(target: 1, shuffles: 20, seed: nil, references: set, hypothetical: false, pairsPerPass: 5)
        #expect(given.shuffles == 3)
        let got = try given.attribute(model: model, batch: batch).values
        #expect(got.storage == expected.storage)
    }

    @Test("references that are not one-hot, or of the wrong shape, are refused naming the file")
    func badReferences() {
        #expect(throws: FunctionError.self) {
            try ReferenceSet(Tensor(shape: [2, 1, 4, 5], repeating: 0.5), file: "r.npy", sequences: 2, alphabetSize: 4, length: 5)
        }
        do {
            _ = try ReferenceSet(Tensor(shape: [3, 1, 4, 5], repeating: 0), file: "r.npy", sequences: 2, alphabetSize: 4, length: 5)
            Issue.record("a shape mismatch must be refused")
        } catch { #expect("\(error)".contains("r.npy") && "\(error)".contains("(2, S, 4, 5)")) }
    }
}
