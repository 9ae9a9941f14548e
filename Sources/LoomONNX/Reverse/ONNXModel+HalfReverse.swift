import LoomTensor

// The reverse pass over the examples' half of a DeepLIFT pass.
//
// A pass stacks P examples over their P references, and tangermeme's autograd computes the
// gradient of every row. Only the examples' half reaches the attributions: each rule gives an
// example row a gradient computed from that row's own gradient (the rescale rule's ratio comes
// from both halves' forward values, but multiplies the row's own gradient), and every other
// node's gradient is row by row. The exception is tangermeme's MaxPool rule, which sums the two
// halves' gradients. So, on a model whose path from X acts row by row and takes no such rule,
// the reverse pass runs over P rows in place of 2P, with the same values:
//
// - a step without a rule runs backwards on its inputs' and outputs' first P rows, fetched as
//   the rule reads them (``ReverseStep``);
// - a rule that compares an example with its reference (the rescale rule, and a multi-node
//   module's) reads both rows in place (``PairedRows``) and returns the example's gradient;
// - any other rule (Softmax's, LayerNorm's) runs on the whole batch with the examples' gradient
//   given to both halves, and keeps the first P rows of what it returns.
//
// A model with a MaxPool rule runs the steps from its lowest such step on over the whole batch,
// then the steps below it over the examples' half (its first convolutions, say): below the
// lowest rule that sums the halves, nothing reads the references' gradients.
//
// Which rows are the examples' is known where every value on X's path keeps the batch on axis
// 0: ``ONNXModel/halfReversePlan`` follows every input's rows with the row-sharing analysis
// (``SharedRowPlan``), and each step is checked at run time as a shared step is. A step that
// fails the check sends the pass back to the whole batch.

extension ONNXModel {
    /// The plan for reverse passes over the examples' half, if every step on X's path acts row by row.
    static func halfReversePlan(_ steps: [Step], slotCount: Int, constants: [Int: Value], inputs: [Int], outputs: [Int]) -> SharedRowPlan? {
        guard !inputs.isEmpty,
            let plan = SharedRowPlan(steps: steps, slotCount: slotCount, constants: constants, sharedInputs: inputs, otherInputs: [], outputs: outputs)
        else { return nil }
        // Every step whose outputs depend on X's values (a Shape of X is metadata, recomputed from the half).
        let dependent = xDependentSlots(steps, x: inputs[0])
        for (i, step) in steps.enumerated() where step.outputs.contains(where: dependent.contains) {
            guard plan.steps[i].sharedData else { return nil }
        }
        return plan
    }

    /// The step index below which a pass over `rules` runs backwards over the examples' half:
    /// ``steps``' count when every step can, the lowest step whose rule sums both halves'
    /// gradients otherwise (it and the steps after it take the whole batch), nil without a plan.
    func halfReverseStart(_ rules: DeepLiftRules) -> Int? {
        guard halfReversePlan != nil else { return nil }
        let dependent = xDependentSlots()
        for (i, step) in steps.enumerated() where step.outputs.contains(where: dependent.contains) {
            if let kernel = step.kernel.reversible, kernel.mixesGradientHalves(useRule: rules.useRule[i]) { return i }
        }
        return steps.count
    }
}

/// The examples' half of a DeepLIFT pass's forward values: the first P of each value's 2P rows.
///
/// Rows are sliced the first time a slot is read; shapes computed from the batch (`Shape(X)` and
/// its arithmetic, a zero initial state) are computed again from the half, as the plan marks them.
final class HalfValues {
    let full: ForwardValues
    let plan: SharedRowPlan
    let steps: [ONNXModel.Step]
    /// P: the examples' rows.
    let rows: Int
    private var values: [Int: Value] = [:]
    private var producer: [Int: Int] = [:]
    private var checked = Set<Int>()

    init(full: ForwardValues, plan: SharedRowPlan, steps: [ONNXModel.Step], rows: Int) {
        self.full = full
        self.plan = plan
        self.steps = steps
        self.rows = rows
        for (i, step) in steps.enumerated() { for s in step.outputs { producer[s] = i } }
    }

    /// Slot `slot`'s value over the examples' rows.
    func value(_ slot: Int) throws -> Value? {
        if let v = values[slot] { return v }
        switch plan.worlds[slot] {
        case .constant, .batch:
            return full[slot]
        case .sharedData:
            let v = try full.firstRows(slot, rows)
            values[slot] = v
            return v
        case .sharedMeta:
            guard let p = producer[slot] else { return full[slot] }
            let step = steps[p]
            let results = try step.kernel.run(step.inputs.map { try $0.flatMap { try value($0) } })
            for (s, r) in zip(step.outputs, results) { values[s] = r }
            return values[slot]
        }
    }

    /// Slot `slot`'s shape over the examples' rows, without slicing it.
    func shape(_ slot: Int) -> [Int]? {
        switch plan.worlds[slot] {
        case .sharedData:
            guard var shape = full.shape(slot), !shape.isEmpty else { return nil }
            shape[0] = rows
            return shape
        case .sharedMeta: return (try? value(slot))??.shape
        case .constant, .batch: return full.shape(slot)
        }
    }

    /// Whether slot `slot` holds float32 values.
    func isFloat(_ slot: Int) -> Bool {
        if plan.worlds[slot] == .sharedMeta, case .float?? = try? value(slot) { return true }
        return full.isFloat(slot)
    }

    /// Checks, once per step, that step `index` acted row by row on the whole batch (2P rows).
    ///
    /// Steps whose outputs the shared forward pass computed on distinct rows were checked there.
    func check(_ index: Int) throws {
        guard checked.insert(index).inserted else { return }
        let step = steps[index], stepPlan = plan.steps[index]
        guard stepPlan.sharedData else { throw NotRowWise(step: "\(step.op) '\(step.name)'") }
        if step.outputs.allSatisfy(full.heldDistinct) { return }
        let inputs = step.inputs.map { $0.flatMap { full.facts($0) } }
        let outputs = step.outputs.compactMap { full[$0] }
        do {
            guard outputs.count == step.outputs.count else { throw NotRowWise() }
            try ONNXModel.checkRowWise(step, plan: stepPlan, inputs: inputs, outputs: outputs, rows: 2 * rows)
        } catch {
            throw NotRowWise(step: "\(step.op) '\(step.name)'")
        }
    }
}

extension Value {
    /// The first `n` rows of the batch (first) axis.
    func firstRows(_ n: Int) throws -> Value {
        switch self {
        case .float(let t): .float(try t.firstRows(n))
        case .int64(let t): .int64(try t.firstRows(n))
        }
    }
}

extension Tensor {
    /// The first `n` rows along axis 0; throws ``NotRowWise`` if there are fewer.
    func firstRows(_ n: Int) throws -> Tensor {
        guard let first = shape.first, first >= n else { throw NotRowWise() }
        let rowSize = Array(shape.dropFirst()).elementCount
        return Tensor(shape: [n] + shape.dropFirst(), storage: Array(storage[0..<(n * rowSize)]))
    }

    /// The tensor stacked over itself along axis 0: the examples' gradient given to both halves.
    func twice() -> Tensor {
        Tensor(shape: [2 * (shape.first ?? 0)] + shape.dropFirst(), storage: storage + storage)
    }
}
