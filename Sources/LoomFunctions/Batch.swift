import LoomTensor

/// One batch of examples: their sequences and, aligned with them, one row of each extra model input.
///
/// Sequences repeat across a pairwise or product batch, so they are held once:
/// `x` holds the distinct sequences and `xRows[i]` says which one example `i` uses.
public struct Batch: Sendable {
    /// The distinct one-hot sequences of the batch, (D, A, L).
    public var x: Tensor<Float>
    /// For each example, its row of `x`.
    public var xRows: [Int]
    /// The extra model inputs, each (B, ...).
    public var args: [Tensor<Float>]
    /// For each row of `x`, its index in the job's X (empty when the rows are not X's own, e.g. perturbed copies).
    public var xIndices: [Int]

    /// A batch from distinct sequences and the row each example uses.
    public init(x: Tensor<Float>, xRows: [Int], args: [Tensor<Float>], xIndices: [Int] = []) {
        self.x = x
        self.xRows = xRows
        self.args = args
        self.xIndices = xIndices
    }

    /// A batch whose every example has its own row of `x`.
    public init(x: Tensor<Float>, args: [Tensor<Float>], xIndices: [Int] = []) {
        self.init(x: x, xRows: Array(0..<(x.shape.first ?? 0)), args: args, xIndices: xIndices)
    }

    /// The number of examples.
    public var count: Int { xRows.count }

    /// The number of distinct sequences.
    public var distinctCount: Int { x.shape.first ?? 0 }

    /// The sequences of every example, (B, A, L).
    public var expandedX: Tensor<Float> {
        xRows == Array(0..<distinctCount) ? x : x.gatherRows(xRows)
    }

    /// The same examples, each with its own copy of its sequence (no sharing).
    public func unshared() -> Batch {
        Batch(x: expandedX, args: args, xIndices: xIndices.isEmpty ? [] : xRows.map { xIndices[$0] })
    }

    /// The same examples with other sequences (one per distinct row), which are no longer X's own rows.
    public func replacingX(_ newX: Tensor<Float>) -> Batch {
        Batch(x: newX, xRows: xRows, args: args)
    }
}
