import LoomTensor

extension MaxPoolKernel: ReversibleKernel {
    /// For each output, the input position that won its window (the first maximum, as torch picks it).
    func argmax(_ x: Tensor<Float>, outLength: Int) -> [Int] {
        let rows = x.shape[0] * x.shape[1], length = x.shape[2]
        var winners = [Int](repeating: 0, count: rows * outLength)
        x.storage.withUnsafeBufferPointer { p in
            for r in 0..<rows {
                let src = p.baseAddress! + r * length
                for j in 0..<outLength {
                    var m = -Float.infinity, best = -1
                    let start = j * stride - padLeft
                    for t in 0..<kernel {
                        let i = start + t * dilation
                        if i >= 0 && i < length && (src[i] > m || best < 0) { m = src[i]; best = i }
                    }
                    winners[r * outLength + j] = max(best, 0)
                }
            }
        }
        return winners
    }

    /// tangermeme's max-pooling rule: the change in each pooled output, routed to the
    /// position that won its window in its own half, summed over the example and reference
    /// halves, divided by the change in the input; the ordinary gradient where the input
    /// does not change.
    func reverse(_ step: ReverseStep) throws -> [Tensor<Float>?] {
        guard step.needs(0) else { return [nil] }
        let x = try step.input(0), y = try step.output(0), g = try step.grad()
        let outLength = y.shape[2], length = x.shape[2]
        let rows = x.shape[0] * x.shape[1]
        let half = try halfCount(x, "the input of MaxPool")
        let halfRows = rows / 2, outHalf = half / length * outLength
        let winners = argmax(x, outLength: outLength)
        // routed[h]: (g * Δout) scattered to winning positions; plain: the ordinary gradient.
        var routed = [Float](repeating: 0, count: x.count)
        var plain = [Float](repeating: 0, count: x.count)
        for r in 0..<rows {
            for j in 0..<outLength {
                let o = r * outLength + j
                let own = y.storage[o]
                let (xo, ro) = r < halfRows ? (own, y.storage[o + outHalf]) : (y.storage[o - outHalf], own)
                let top = max(xo, ro)
                let delta = r < halfRows ? top - ro : xo - top
                let dst = r * length + winners[o]
                routed[dst] += g.storage[o] * delta
                plain[dst] += g.storage[o]
            }
        }
        // A functional max_pool1d: the plain gradient, to each window's winner in its own half.
        guard step.useRule else { return [Tensor(shape: x.shape, storage: plain)] }
        var out = [Float](repeating: 0, count: x.count)
        for i in 0..<half {
            let dIn = x.storage[i] - x.storage[half + i]
            let v = dIn == 0 ? plain[i] : (routed[i] + routed[half + i]) / dIn
            out[i] = v
            out[half + i] = v
        }
        return [Tensor(shape: x.shape, storage: out)]
    }
}

extension BatchNormKernel: ReversibleKernel {
    func reverse(_ step: ReverseStep) throws -> [Tensor<Float>?] {
        guard step.needs(0) else { return [nil, nil, nil, nil, nil] }
        if step.needs.dropFirst().contains(true) { throw KernelError("batch-norm parameters that depend on the input have no gradient rule in Loom") }
        let x = try step.input(0), g = try step.grad()
        let scale = try step.input(1), variance = try step.input(4)
        let channels = x.shape[1], inner = Array(x.shape.dropFirst(2)).elementCount
        var out = g.storage
        for n in 0..<x.shape[0] {
            for c in 0..<channels {
                let a = scale.storage[c] / (variance.storage[c] + epsilon).squareRoot()
                let base = (n * channels + c) * inner
                for i in 0..<inner { out[base + i] *= a }
            }
        }
        return [Tensor(shape: x.shape, storage: out), nil, nil, nil, nil]
    }
}
