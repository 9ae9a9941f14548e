import LoomTensor

/// A function's result for one batch, nested as tangermeme nests it.
///
/// A leaf is a tensor whose first axis is the batch. A list holds the outputs of a
/// multi-output model, or the (before, after) pair of marginalize and ablate, or both.
public indirect enum OutputTree: Sendable {
    case leaf(Tensor<Float>)
    case list([OutputTree])

    /// Every leaf with its index path (`[]`, `[k]`, `[k, j]`), depth first.
    public var leaves: [(index: [Int], tensor: Tensor<Float>)] {
        switch self {
        case .leaf(let t): return [([], t)]
        case .list(let items):
            return items.enumerated().flatMap { k, item in item.leaves.map { ([k] + $0.index, $0.tensor) } }
        }
    }
}

extension OutputTree {
    /// The same tree with `transform` applied to every leaf.
    public func mapLeaves(_ transform: (Tensor<Float>) throws -> Tensor<Float>) rethrows -> OutputTree {
        switch self {
        case .leaf(let t): return .leaf(try transform(t))
        case .list(let items): return .list(try items.map { try $0.mapLeaves(transform) })
        }
    }
}
