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

    /// A batch from distinct sequences and the row each example uses.
    public init(x: Tensor<Float>, xRows: [Int], args: [Tensor<Float>]) {
        self.x = x
        self.xRows = xRows
        self.args = args
    }

    /// A batch whose every example has its own row of `x`.
    public init(x: Tensor<Float>, args: [Tensor<Float>]) {
        self.init(x: x, xRows: Array(0..<(x.shape.first ?? 0)), args: args)
    }

    /// The number of examples.
    public var count: Int { xRows.count }

    /// The sequences of every example, (B, A, L).
    public var expandedX: Tensor<Float> {
        xRows == Array(0..<(x.shape.first ?? 0)) ? x : x.gatherRows(xRows)
    }

    /// The same examples with other sequences (one per distinct row).
    public func replacingX(_ newX: Tensor<Float>) -> Batch {
        Batch(x: newX, xRows: xRows, args: args)
    }
}
