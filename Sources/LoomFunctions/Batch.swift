import LoomTensor

/// One batch of examples: the sequences and, aligned with them, one row of each extra model input.
public struct Batch: Sendable {
    /// One-hot sequences, (B, A, L).
    public var x: Tensor<Float>
    /// The extra model inputs, each (B, ...).
    public var args: [Tensor<Float>]

    public init(x: Tensor<Float>, args: [Tensor<Float>]) {
        self.x = x
        self.args = args
    }

    /// The number of examples.
    public var count: Int { x.shape.first ?? 0 }
}
