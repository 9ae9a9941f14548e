import Foundation
import LoomTensor
import LoomTestSupport
import Testing

@testable import LoomONNX

/// deep-lift-shap's reverse pass over the examples' half: on models whose path from X acts row
/// by row, the reverse pass runs over P rows in place of 2P below the lowest rule that sums both
/// halves' gradients (tangermeme's MaxPool rule), everywhere on a model without one, and gives
/// the attributions the whole batch gives.
@Suite("deep-lift-shap: the reverse pass over the examples' half")
struct HalfReverseTests {
    /// Models whose reverse pass runs over the examples' half throughout (no MaxPool rule, every step on X's path row by row).
    static let halfModels = ["basenji", "mixed_modules", "mixed_functional", "bpnet_counts", "chrombpnet_counts"]
    /// Models with a MaxPool rule: the whole batch from it on, the examples' half below it (their first convolution).
    static let belowPoolModels = ["basset", "deepsea", "cellstate_late", "cellstate_early"]
    /// Models whose path from X moves the batch axis (DanQ's LSTM, the transformer's attention): the whole batch.
    static let wholeModels = ["danq", "transformer"]

    static func family(_ name: String) -> String? {
        (halfModels + belowPoolModels + wholeModels).first { name.hasPrefix("zoo_\($0)_") }
    }

    @Test("every zoo deep-lift-shap model is listed as half or whole")
    func listed() {
        #expect(DeepLiftSharingTests.cases.count >= 18)
        for name in DeepLiftSharingTests.cases { #expect(Self.family(name) != nil, "\(name) is in no list") }
    }

    @Test("the examples' half gives the whole batch's attributions, bit for bit", arguments: DeepLiftSharingTests.cases)
    func sameBits(_ name: String) throws {
        let (model, shared, rows, others) = try DeepLiftSharingTests.batch(Repository.conformanceDirectory + "/" + name)
        let rules = try DeepLiftRules(model: model)
        let family = try #require(Self.family(name))
        let start = model.halfReverseStart(rules)
        let expectHalf = !Self.wholeModels.contains(family)
        if Self.halfModels.contains(family) { #expect(start == model.steps.count) }
        if Self.belowPoolModels.contains(family) {
            let s = try #require(start)
            #expect(s > 0 && s < model.steps.count && model.steps[s].op == "MaxPool", "starts at \(s)")
        }
        if Self.wholeModels.contains(family) { #expect(start == nil) }
        let whole = try model.deepLift(shared: shared, rows: rows, others: others, target: 0, rules: rules, halfReverse: false)
        let before = model.rowSharingFallbacks
        let half = try model.deepLift(shared: shared, rows: rows, others: others, target: 0, rules: rules, halfReverse: true)
        if expectHalf { #expect(model.rowSharingFallbacks == before, "the pass fell back to the whole batch") }
        #expect(half.multipliers.shape == whole.multipliers.shape)
        #expect(half.outputs == whole.outputs)
        let differing = zip(half.multipliers.storage, whole.multipliers.storage).filter { $0.bitPattern != $1.bitPattern }.count
        #expect(differing == 0, "\(differing) of \(whole.multipliers.count) multipliers differ")
        #expect(whole.multipliers.storage.contains { $0 != 0 }, "the attributions are all zero: the test would compare nothing")
    }

    @Test("a MaxPool without its rule (--linear MaxPool) takes its plain gradient row by row: the examples' half serves")
    func linearMaxPool() throws {
        let name = try #require(DeepLiftSharingTests.cases.first { $0.hasPrefix("zoo_basset_") })
        let (model, shared, rows, others) = try DeepLiftSharingTests.batch(Repository.conformanceDirectory + "/" + name)
        let ruled = try DeepLiftRules(model: model)
        #expect(model.halfReverseStart(ruled).map { model.steps[$0].op } == "MaxPool")
        let rules = try DeepLiftRules(model: model, linear: ["MaxPool"])
        #expect(model.halfReverseStart(rules) == model.steps.count)
        let whole = try model.deepLift(shared: shared, rows: rows, others: others, target: 0, rules: rules, halfReverse: false)
        let before = model.rowSharingFallbacks
        let half = try model.deepLift(shared: shared, rows: rows, others: others, target: 0, rules: rules, halfReverse: true)
        #expect(model.rowSharingFallbacks == before, "the pass fell back to the whole batch")
        // The dense layers' GEMMs over P rows in place of 2P may round differently inside OpenBLAS
        // (8e-10 against attributions of 2.5e-3, measured): the same to float32 precision.
        let scale = whole.multipliers.storage.map(abs).max() ?? 0
        let worst = zip(half.multipliers.storage, whole.multipliers.storage).map { abs($0 - $1) }.max() ?? .infinity
        #expect(scale > 0 && worst <= 1e-6 * scale, "multipliers differ by \(worst) (largest \(scale))")
        // The rule changes the attributions: the two runs above did not both ignore it.
        let withRule = try model.deepLift(shared: shared, rows: rows, others: others, target: 0, rules: ruled, halfReverse: false)
        let changed = zip(withRule.multipliers.storage, whole.multipliers.storage).map { abs($0 - $1) }.max() ?? 0
        #expect(changed > 1e-3 * scale, "MaxPool's rule changed nothing (\(changed))")

        // An odd number of pairs (3): the examples' half has an odd row count.
        let oddRows = [0, 0, 1, 2, 3, 6]
        let oddOthers = others.map { $0.gatherRows([0, 1, 4, 0, 1, 4]) }
        let oddWhole = try model.deepLift(shared: shared, rows: oddRows, others: oddOthers, target: 0, rules: rules, halfReverse: false)
        let oddHalf = try model.deepLift(shared: shared, rows: oddRows, others: oddOthers, target: 0, rules: rules, halfReverse: true)
        #expect(model.rowSharingFallbacks == before, "the pass fell back to the whole batch")
        let oddWorst = zip(oddHalf.multipliers.storage, oddWhole.multipliers.storage).map { abs($0 - $1) }.max() ?? .infinity
        #expect(oddHalf.multipliers.shape == [3, 4, 200] && oddWorst <= 1e-6 * scale, "multipliers differ by \(oddWorst)")
    }

    @Test("a model whose path from X moves the batch axis (DanQ's LSTM) has no plan for the examples' half")
    func batchAxisMoves() throws {
        let name = try #require(DeepLiftSharingTests.cases.first { $0.hasPrefix("zoo_danq_") })
        let model = try ONNXModel(path: Repository.conformanceDirectory + "/" + name + "/model.onnx")
        #expect(model.halfReversePlan == nil)
        let rules = try DeepLiftRules(model: model, linear: ["MaxPool"])
        #expect(model.halfReverseStart(rules) == nil)
    }
}

/// Steps that pass the plan but mix rows at run time send the pass back to the whole batch.
@Suite("deep-lift-shap: the examples' half falls back to the whole batch")
struct HalfReverseFallbackTests {
    @Test("an operator that mixes rows at run time: the whole batch's attributions, bit for bit", arguments: ["softmax0", "reduce0", "transpose"])
    func fallback(kind: String) throws {
        let model = try rowMixingModel(kind)
        #expect(model.halfReversePlan != nil, "the plan should take the step for row-wise; only the run-time check can tell")
        // 2 examples over 5 pairs, then 5 references; the softmax over the batch takes its plain gradient.
        let shared = Tensor<Float>(shape: [7, 2, 3], storage: noise(42, seed: 3))
        let rows = [0, 0, 0, 1, 1, 2, 3, 4, 5, 6]
        let a = Tensor<Float>(shape: [10, 1], storage: (0..<10).map { Float($0) })
        let rules = try DeepLiftRules(model: model, linear: ["Softmax"])
        #expect(model.halfReverseStart(rules) == model.steps.count)
        let before = model.rowSharingFallbacks
        let whole = try model.deepLift(shared: shared, rows: rows, others: [a], target: 0, rules: rules, halfReverse: false)
        let afterWhole = model.rowSharingFallbacks
        let half = try model.deepLift(shared: shared, rows: rows, others: [a], target: 0, rules: rules, halfReverse: true)
        // The half run falls back once more than the whole run: its reverse pass, besides the forward pass's sharing.
        #expect(model.rowSharingFallbacks - afterWhole == afterWhole - before + 1)
        #expect(half.multipliers.storage.map(\.bitPattern) == whole.multipliers.storage.map(\.bitPattern))
        #expect(whole.multipliers.storage.contains { $0 != 0 })
    }
}
