import LoomTensor

/// Which inputs of a row-wise kernel may carry shared rows (see ``SharedRowPlan``).
enum RowInputs: Sendable {
    /// Only these input positions may hold shared data; the others must be constants.
    /// `shapes` lists positions that may hold shared shape metadata (Reshape's target).
    case positions(Set<Int>, shapes: Set<Int> = [])
    /// Row-wise only when every input is shared data (Concat of shared rows).
    case allShared
}

/// What a row-wise kernel's run-time check sees of one step.
struct RowFacts {
    /// The step's inputs: shape, and values if small int64.
    let inputs: [ONNXModel.InputFacts?]
    let outputs: [Value]
    /// Input positions that held constants, and shared shape metadata.
    let constantPositions: Set<Int>
    let metaPositions: Set<Int>

    /// Input 0's rank.
    var rank: Int { inputs.first??.shape.count ?? 0 }
    /// Input `k`'s values, when it is a small int64 tensor.
    func ints(_ k: Int) -> [Int]? { k < inputs.count ? inputs[k]?.ints : nil }
    /// Throws ``NotRowWise`` if a constant operand broadcast along the batch axis (extent other than 1 at the output's rank).
    func constantsKeepBatch() throws {
        let outRank = outputs[0].shape.count
        for k in constantPositions where k < inputs.count {
            if let v = inputs[k], v.shape.count == outRank, v.shape.first != 1 { throw NotRowWise() }
        }
    }

    /// Whether an axis of a tensor of rank `r` leaves the batch axis alone.
    func keepsBatch(_ axis: Int, rank r: Int) -> Bool { (axis < 0 ? axis + r : axis) >= 1 }
}

/// A kernel that acts row by row along the batch axis: run on a batch's distinct sequences, it
/// gives the rows it would give on the whole batch. Such a kernel may run once per distinct
/// sequence in a product (``SharedRowPlan``).
///
/// A kernel that does not conform is never shared: the conservative default. Every kernel in
/// ``OpRegistry`` either conforms or is listed in `KernelFeatureTests` as not row-wise.
protocol RowWiseKernel: Kernel {
    /// Which inputs may be shared data.
    var rowInputs: RowInputs { get }
    /// Throws ``NotRowWise`` if this step did not act row by row after all (an axis that
    /// turned out to be the batch axis, a constant that broadcast along it). Called after the
    /// generic check that every float output kept the rows.
    func checkRows(_ facts: RowFacts) throws
}

extension RowWiseKernel {
    var rowWise: (any RowWiseKernel)? { self }
}

/// Element-wise and other kernels that are row-wise by construction need no check.
protocol PlainRowWiseKernel: RowWiseKernel {}
extension PlainRowWiseKernel {
    var rowInputs: RowInputs { .positions([0]) }
    func checkRows(_ facts: RowFacts) throws {}
}

/// A kernel whose work is more than one operation per output element (Conv, Gemm, MatMul):
/// it says how many multiply-adds a step cost, for sizing shards.
///
/// The default, for kernels that do not conform, is one operation per output element. Every
/// kernel in ``OpRegistry`` either conforms or is listed in `KernelFeatureTests` as costing
/// its output size.
protocol CostedKernel: Kernel {
    /// Multiply-adds of one step, from its input and output values.
    func multiplyAdds(inputs: [Value?], outputs: [Value]) -> Double
}

extension CostedKernel {
    var costed: (any CostedKernel)? { self }
}
