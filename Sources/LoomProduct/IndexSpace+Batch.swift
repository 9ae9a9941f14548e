import LoomFunctions
import LoomTensor

extension IndexSpace {
    /// The X rows a range of examples uses: the distinct sequence indices in order of first use,
    /// and for each example its position among them.
    ///
    /// Consecutive examples share their sequence, so a batch holds few. With `shareRows`
    /// false every example gets its own position.
    public func sequenceRows(for range: Range<Int>, shareRows: Bool = true) -> (distinct: [Int], rows: [Int]) {
        var distinct: [Int] = []
        var rows: [Int] = []
        rows.reserveCapacity(range.count)
        for e in range {
            let x = sequence(of: e)
            if !shareRows || distinct.last != x { distinct.append(x) }
            rows.append(distinct.count - 1)
        }
        return (distinct, rows)
    }

    /// The distinct sequence indices a range of examples uses, in order of first use: the X
    /// rows a shard carries (``sequenceRows(for:shareRows:)``'s `distinct`, without the per-example rows).
    public func distinctSequences(for range: Range<Int>) -> [Int] {
        var distinct: [Int] = []
        for e in range {
            let x = sequence(of: e)
            if distinct.last != x { distinct.append(x) }
        }
        return distinct
    }

    /// A batch from its distinct sequences and each example's row among them (as ``sequenceRows(for:shareRows:)`` gives them), and the full args.
    ///
    /// The in-process executor and remote workers both build batches here, so a shard's
    /// batch, and so its floating-point result, is the same wherever it is computed.
    public func batch(for range: Range<Int>, distinctX: Tensor<Float>, rows: [Int], args: [Tensor<Float>]) -> Batch {
        let b = range.count
        // Each arg's row for an example, by arithmetic: no per-example arrays (an array per
        // example, with its runtime metadata lookup, was a tenth of a cheap model's time).
        let ab = args.enumerated().map { k, arg in
            let (period, length) = argCycle(k)
            return Tensor<Float>(shape: [b] + Array(arg.shape.dropFirst())) { out in
                let row = Array(arg.shape.dropFirst()).elementCount
                arg.storage.withUnsafeBufferPointer { src in
                    for (i, e) in range.enumerated() {
                        (out.baseAddress! + i * row).initialize(from: src.baseAddress! + (e / period) % length * row, count: row)
                    }
                }
            }
        }
        var indices = [Int](repeating: 0, count: distinctX.shape.first ?? 0)
        for (i, e) in range.enumerated() where rows[i] < indices.count { indices[rows[i]] = sequence(of: e) }
        return Batch(x: distinctX, xRows: rows, args: ab, xIndices: indices)
    }

    /// Arg `k`'s row for example `e` is `(e / period) % length`: the examples sharing one of its
    /// rows come in runs of `period`, and its rows cycle with `length`.
    func argCycle(_ k: Int) -> (period: Int, length: Int) {
        switch mode {
        case .pairwise:
            return (1, axes[1])
        case .product:
            return (argLengths[(k + 1)...].reduce(1, *), argLengths[k])
        }
    }
}
