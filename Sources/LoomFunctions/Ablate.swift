import LoomONNX
import LoomTensor

/// tangermeme's `ablate`: the inner function before and after shuffling a region, `n` times.
///
/// Returns `(y_before, y_after)`, with `y_after` shaped (batch, n, ...) per leaf.
public struct Ablate: SequenceFunction {
    /// The region and its shuffles.
    public let shuffle: RegionShuffle
    /// The function applied before and after (predict, or deep-lift-shap).
    public let inner: any SequenceFunction
    public var loadNotes: [String] { inner.loadNotes }

    public init(shuffle: RegionShuffle, inner: any SequenceFunction) {
        self.shuffle = shuffle
        self.inner = inner
    }

    /// The `n` shuffled copies of each distinct sequence, copy k of row d at row `d * n + k`.
    func shuffled(_ x: Tensor<Float>) -> Tensor<Float> {
        let (d, a, l) = (x.shape[0], x.shape[1], x.shape[2])
        let n = shuffle.permutations.count
        let start = shuffle.start
        return Tensor(shape: [d * n, a, l]) { out in
            x.storage.withUnsafeBufferPointer { p in
                for r in 0..<d {
                    for (k, perm) in shuffle.permutations.enumerated() {
                        let dst = out.baseAddress! + (r * n + k) * a * l
                        dst.initialize(from: p.baseAddress! + r * a * l, count: a * l)
                        for c in 0..<a {
                            let row = c * l
                            for (j, from) in perm.enumerated() { dst[row + start + j] = p[r * a * l + row + start + from] }
                        }
                    }
                }
            }
        }
    }

    public func apply(model: ONNXModel, batch: Batch) throws -> OutputTree {
        let before = try inner.apply(model: model, batch: batch)
        let n = shuffle.permutations.count
        // Example e's shuffle k is example e * n + k, with e's args repeated (repeat_interleave).
        let rows = batch.xRows.flatMap { r in (0..<n).map { r * n + $0 } }
        let args = batch.args.map { $0.gatherRows(batch.xRows.indices.flatMap { [Int](repeating: $0, count: n) }) }
        let perturbed = Batch(x: shuffled(batch.x), xRows: rows, args: args)
        let after = try inner.apply(model: model, batch: perturbed).mapLeaves { t in
            t.reshaped([batch.count, n] + Array(t.shape.dropFirst()))
        }
        return .list([before, after])
    }
}
