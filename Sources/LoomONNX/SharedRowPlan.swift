import LoomTensor

/// How a model runs when its first input repeats rows across the batch, as X does in a product.
///
/// In a pairwise or product job a batch holds few distinct sequences: a batch of 32
/// drawn from 2,500 (alpha, beta) pairs per sequence holds one or two. The part of the
/// graph that depends on X alone (a convolutional tower, a dense layer over the
/// flattened sequence) then needs computing once per distinct sequence, not once per
/// example. The plan marks that part:
///
/// - a value is *shared* if it is computed from X and constants only, by operators that
///   act row by row along the batch axis (element-wise, Conv, Gemm on the left, ...);
/// - shape metadata computed from shared values (`Shape(X)` and its arithmetic) is
///   shared too, and may only feed shared nodes;
/// - everything else runs on the full batch; a shared value it reads is first expanded
///   (its rows gathered) to the batch.
///
/// Each shared node's row-wise behaviour is checked at run time against what actually
/// flows (axes, shapes); if a check fails the batch is recomputed the plain way and the
/// model stops sharing. So the plan can only make a model faster, never change its result
/// beyond floating-point reassociation inside BLAS.
struct SharedRowPlan: Sendable {
    enum World: Sendable { case constant, sharedData, sharedMeta, batch }

    /// Per step: whether it runs on shared rows, and which of its inputs to expand first.
    struct StepPlan: Sendable {
        let shared: Bool
        /// Shared and carrying data rows (not shape metadata): checked at run time.
        let sharedData: Bool
        let expand: [Int]
        /// Input positions holding constants, and holding shared shape metadata.
        let constantPositions: Set<Int>
        let metaPositions: Set<Int>
    }

    let steps: [StepPlan]
    /// Output slots that hold shared rows and must be expanded at the end.
    let expandOutputs: Set<Int>
    /// What each slot holds.
    let worlds: [World]

    /// Analyzes a compiled model; nil when sharing cannot apply (metadata would cross into batch-wide nodes, say).
    ///
    /// `constants` maps the constant slots to their values. A shape read past its batch axis
    /// (`Shape(X, start ≥ 1)`, or `Shape(X)` gathered at indices ≥ 1: X's length, say) is the same
    /// on the distinct rows as on the batch, so it counts as a constant: batch-wide nodes may read
    /// it (BPNet's classic export trims its control track by a length computed from X's shape).
    ///
    /// `sharedInputs` are the inputs whose rows the plan follows (X alone, for sharing; every
    /// input, for ``ONNXModel/halfReversePlan``); `otherInputs` run batch-wide.
    init?(
        steps modelSteps: [ONNXModel.Step], slotCount: Int, constants: [Int: Value], sharedInputs: [Int], otherInputs: [Int], outputs: [Int]
    ) {
        var world = [World](repeating: .constant, count: slotCount)
        for s in sharedInputs { world[s] = .sharedData }
        for s in otherInputs { world[s] = .batch }
        for s in constants.keys { world[s] = .constant }
        var shapes = Set<Int>() // Shape(shared data) from axis 0: the batch size first
        var plans: [StepPlan] = []
        var anyShared = false
        for step in modelSteps {
            let inWorlds = step.inputs.map { $0.map { world[$0] } ?? .constant }
            let result: World
            var expand: [Int] = []
            if step.op == "Shape" && inWorlds.first == .sharedData, let shape = step.kernel as? ShapeKernel {
                if shape.start >= 1 {
                    result = .constant
                } else {
                    result = .sharedMeta
                    if shape.start == 0 { shapes.formUnion(step.outputs) }
                }
            } else if Self.gathersPastTheBatch(step, shapes: shapes, constants: constants) {
                result = .constant
            } else if inWorlds.contains(.batch) || !inWorlds.contains(where: { $0 == .sharedData || $0 == .sharedMeta }) {
                result = inWorlds.contains(.batch) ? .batch : .constant
            } else if !inWorlds.contains(.sharedData) {
                result = .sharedMeta // arithmetic on shared shapes
            } else if Self.rowWiseCandidate(step, inWorlds) {
                result = .sharedData
            } else {
                result = .batch
            }
            if result == .batch {
                for (k, s) in step.inputs.enumerated() {
                    guard let s else { continue }
                    switch inWorlds[k] {
                    case .sharedData: expand.append(s)
                    case .sharedMeta: return nil // a shared shape would be read batch-wide: do not share
                    default: break
                    }
                }
            }
            if result == .sharedData { anyShared = true }
            for s in step.outputs { world[s] = result }
            plans.append(
                StepPlan(
                    shared: result == .sharedData || result == .sharedMeta, sharedData: result == .sharedData, expand: expand,
                    constantPositions: Set(inWorlds.indices.filter { inWorlds[$0] == .constant }),
                    metaPositions: Set(inWorlds.indices.filter { inWorlds[$0] == .sharedMeta })))
        }
        guard anyShared else { return nil }
        var expandOutputs = Set<Int>()
        for s in outputs {
            switch world[s] {
            case .sharedData: expandOutputs.insert(s)
            case .sharedMeta, .constant: return nil
            case .batch: break
            }
        }
        steps = plans
        self.expandOutputs = expandOutputs
        worlds = world
    }

    /// Whether `step` gathers, from a shape whose first element is the batch size, only elements
    /// after it (constant indices, all ≥ 1).
    static func gathersPastTheBatch(_ step: ONNXModel.Step, shapes: Set<Int>, constants: [Int: Value]) -> Bool {
        guard step.op == "Gather", let gather = step.kernel as? GatherKernel, gather.axis == 0 || gather.axis == -1,
            step.inputs.count == 2, let data = step.inputs[0], shapes.contains(data),
            let indices = step.inputs[1], case .int64(let t)? = constants[indices], t.count > 0
        else { return false }
        return t.storage.allSatisfy { $0 >= 1 }
    }

    /// Whether a step can act row by row, given which inputs are shared data (the rest constant or shared shapes).
    static func rowWiseCandidate(_ step: ONNXModel.Step, _ worlds: [World]) -> Bool {
        guard let kernel = step.kernel.rowWise else { return false }
        switch kernel.rowInputs {
        case .positions(let data, let shapes):
            return worlds.enumerated().allSatisfy { k, w in
                switch w {
                case .sharedData: data.contains(k)
                case .sharedMeta: shapes.contains(k)
                default: true
                }
            }
        case .allShared:
            return worlds.allSatisfy { $0 == .sharedData }
        }
    }
}

/// A shared step whose inputs turned out not to be row-wise at run time.
struct NotRowWise: Error {
    var step = ""
}

extension ONNXModel {
    /// What the row-wise checks need to know of a step's input: its shape, and its values if it is a small int64 tensor.
    struct InputFacts {
        var shape: [Int]
        var ints: [Int]?

        init(_ v: Value) {
            shape = v.shape
            if case .int64(let t) = v, t.count <= 64 { ints = t.storage.map { Int($0) } }
        }
    }

    /// Checks at run time that a shared step acted row by row on `rows` rows.
    static func checkRowWise(_ step: Step, plan: SharedRowPlan.StepPlan, inputs: [InputFacts?], outputs: [Value], rows: Int) throws {
        // Every output of a step on shared data holds rows (masks and indices as much as floats).
        for out in outputs { guard out.shape.first == rows else { throw NotRowWise() } }
        guard let kernel = step.kernel.rowWise else { throw NotRowWise() }
        try kernel.checkRows(
            RowFacts(
                inputs: inputs, outputs: outputs, constantPositions: plan.constantPositions,
                metaPositions: plan.metaPositions))
    }
}
