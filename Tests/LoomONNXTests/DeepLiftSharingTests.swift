import Foundation
import LoomTensor
import LoomTestSupport
import Testing

@testable import LoomONNX

/// deep-lift-shap's forward pass on shared rows: the example half of a pass repeats each
/// example once per shuffle, and the X-only part of the graph runs once per distinct row.
@Suite("deep-lift-shap: the forward pass on distinct rows")
struct DeepLiftSharingTests {
    /// The zoo's deep-lift-shap cases (real exports, both exporters).
    static let cases: [String] = {
        let root = Repository.conformanceDirectory
        let names = (try? FileManager.default.contentsOfDirectory(atPath: root)) ?? []
        return names.filter { $0.hasPrefix("zoo_") && $0.hasSuffix("_deep_lift_shap") }.sorted()
    }()

    /// Two examples each repeated over four references: rows 0 0 0 0 1 1 1 1, then eight references.
    static func batch(_ dir: String) throws -> (model: ONNXModel, shared: Tensor<Float>, rows: [Int], others: [Tensor<Float>]) {
        let model = try ONNXModel(path: dir + "/model.onnx")
        let x = try NpyArray.read(path: dir + "/x.npy").floatTensor()
        let rowSize = Array(x.shape.dropFirst()).elementCount
        let examples = Array(x.storage.prefix(2 * rowSize))
        // References: the examples with their positions rotated, a different shift each.
        let length = x.shape[2]
        var refs: [Float] = []
        for k in 0..<8 {
            let e = k / 4
            for c in 0..<x.shape[1] {
                for p in 0..<length { refs.append(examples[e * rowSize + c * length + (p + 3 * k + 1) % length]) }
            }
        }
        let shared = Tensor<Float>(shape: [10] + Array(x.shape.dropFirst()), storage: examples + refs)
        let rows = [0, 0, 0, 0, 1, 1, 1, 1] + Array(2..<10)
        let argPaths = ((try? FileManager.default.contentsOfDirectory(atPath: dir)) ?? []).filter { $0.hasPrefix("a") && $0.hasSuffix(".npy") }.sorted()
        let others = try argPaths.map { path in
            let a = try NpyArray.read(path: dir + "/" + path).floatTensor()
            return a.gatherRows([0, 0, 0, 0, 1, 1, 1, 1] + [0, 0, 0, 0, 1, 1, 1, 1])
        }
        return (model, shared, rows, others)
    }

    @Test("the zoo has deep-lift-shap cases to check")
    func present() {
        #expect(Self.cases.count >= 18, "found \(Self.cases)")
    }

    @Test("shared and plain forward passes give the same attributions", arguments: Self.cases)
    func sameAttributions(_ name: String) throws {
        let (model, shared, rows, others) = try Self.batch(Repository.conformanceDirectory + "/" + name)
        let plain = try model.deepLift(x: shared.gatherRows(rows), others: others, target: 0)
        let before = model.rowSharingFallbacks
        let sharing = try model.deepLift(shared: shared, rows: rows, others: others, target: 0)
        #expect(sharing.multipliers.shape == plain.multipliers.shape)
        // A Gemm or MatMul over fewer rows may round differently inside OpenBLAS: the same to
        // float32 precision, not always the same bits.
        let scale = max(plain.multipliers.storage.map(abs).max() ?? 0, 1e-30)
        let worst = zip(sharing.multipliers.storage, plain.multipliers.storage).map { abs($0 - $1) }.max() ?? 0
        #expect(worst <= 1e-5 * scale, "multipliers differ by \(worst) (largest \(scale))")
        let outScale = max(plain.outputs.map(abs).max() ?? 0, 1e-30)
        let outWorst = zip(sharing.outputs, plain.outputs).map { abs($0 - $1) }.max() ?? 0
        #expect(outWorst <= 1e-5 * outScale, "outputs differ by \(outWorst)")
        // Models whose X-only part acts row by row share it (BPNet's classic export trims its
        // control track by X's length, a shape read past the batch axis); DanQ's LSTM moves the
        // batch axis: it runs plain.
        let sharingModels = [
            "basset", "basenji", "mixed_modules", "mixed_functional", "deepsea", "transformer", "cellstate_late", "bpnet_counts", "chrombpnet_counts"
        ]
        if sharingModels.contains(where: { name.hasPrefix("zoo_\($0)_") }) {
            #expect(model.deepLiftPlan != nil, "the model should share its X-only part")
            #expect(model.rowSharingFallbacks == before, "the shared pass fell back to the plain one")
        }
    }
}
