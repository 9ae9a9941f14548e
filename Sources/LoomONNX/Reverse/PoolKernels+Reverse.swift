import LoomTensor

extension MaxPoolKernel: ReversibleKernel {
    /// The rule sums both halves' routed gradients; the plain gradient keeps each row's own.
    func mixesGradientHalves(useRule: Bool) -> Bool { useRule }

    /// For each output, the input position that won its window (the first maximum, as torch picks it).
    func argmax(_ x: Tensor<Float>, outLength: Int) -> [Int] {
        let rows = x.shape[0] * x.shape[1], length = x.shape[2]
        let span = (kernel - 1) * dilation
        return [Int](unsafeUninitializedCapacity: rows * outLength) { winners, initialized in
            x.storage.withUnsafeBufferPointer { p in
                for r in 0..<rows {
                    let src = p.baseAddress! + r * length
                    let dst = winners.baseAddress! + r * outLength
                    var j = 0
                    while j < outLength {
                        let start = j * stride - padLeft
                        // Eight windows inside the row at once, tap by tap: the same comparisons, in lanes.
                        if start >= 0 && j + 8 <= outLength && start + 7 * stride + span < length {
                            var m = Self.strided(src + start, stride), best = SIMD8<Int32>(repeating: 0)
                            for t in 1..<kernel {
                                let v = Self.strided(src + start + t * dilation, stride)
                                let wins = v .> m
                                m.replace(with: v, where: wins)
                                best.replace(with: Int32(t), where: wins)
                            }
                            for l in 0..<8 { dst[j + l] = start + l * stride + Int(best[l]) * dilation }
                            j += 8
                            continue
                        }
                        defer { j += 1 }
                        var m = -Float.infinity, best = -1
                        if start >= 0 && start + span < length {
                            // Inside the row: the first tap leads, a later one wins only by being larger.
                            best = start
                            m = src[start]
                            var i = start + dilation
                            for _ in 1..<kernel {
                                if src[i] > m { m = src[i]; best = i }
                                i += dilation
                            }
                        } else {
                            for t in 0..<kernel {
                                let i = start + t * dilation
                                if i >= 0 && i < length && (src[i] > m || best < 0) { m = src[i]; best = i }
                            }
                        }
                        dst[j] = max(best, 0)
                    }
                }
            }
            initialized = rows * outLength
        }
    }

    /// tangermeme's max-pooling rule: the change in each pooled output, routed to the
    /// position that won its window in its own half, summed over the example and reference
    /// halves, divided by the change in the input; the ordinary gradient where the input
    /// does not change.
    func reverse(_ step: ReverseStep) throws -> [Tensor<Float>?] {
        guard step.needs(0) else { return [nil] }
        let x = try step.input(0), y = try step.output(0), g = try step.grad()
        if step.useRule && disjointWindows { return [try disjointRule(x, y, g)] }
        return [try positionRule(x, y, g, useRule: step.useRule)]
    }

    /// The rule position by position, for any windows; with `useRule` false, the plain gradient.
    func positionRule(_ x: Tensor<Float>, _ y: Tensor<Float>, _ g: Tensor<Float>, useRule: Bool) throws -> Tensor<Float> {
        let outLength = y.shape[2], length = x.shape[2]
        let rows = x.shape[0] * x.shape[1]
        let winners = argmax(x, outLength: outLength)
        guard useRule else {
            // A functional max_pool1d: the plain gradient, to each window's winner, row by row
            // (so also over the examples' half alone, which need not have an even row count).
            var plain = [Float](repeating: 0, count: x.count)
            for o in 0..<(rows * outLength) { plain[o / outLength * length + winners[o]] += g.storage[o] }
            return Tensor(shape: x.shape, storage: plain)
        }
        let half = try halfCount(x, "the input of MaxPool")
        let halfRows = rows / 2, outHalf = half / length * outLength
        // routed: (g * Δout) scattered to winning positions; plain: the ordinary gradient.
        var routed = [Float](repeating: 0, count: x.count)
        var plain = [Float](repeating: 0, count: x.count)
        y.storage.withUnsafeBufferPointer { py in
            g.storage.withUnsafeBufferPointer { pg in
                winners.withUnsafeBufferPointer { pw in
                    routed.withUnsafeMutableBufferPointer { pr in
                        plain.withUnsafeMutableBufferPointer { pp in
                            for r in 0..<rows {
                                let own = r < halfRows
                                for j in 0..<outLength {
                                    let o = r * outLength + j
                                    let (xo, ro) = own ? (py[o], py[o + outHalf]) : (py[o - outHalf], py[o])
                                    let top = max(xo, ro)
                                    let delta = own ? top - ro : xo - top
                                    let dst = r * length + pw[o]
                                    pr[dst] += pg[o] * delta
                                    pp[dst] += pg[o]
                                }
                            }
                        }
                    }
                }
            }
        }
        let out = Tensor<Float>(shape: x.shape) { out in
            x.storage.withUnsafeBufferPointer { px in
                routed.withUnsafeBufferPointer { pr in
                    plain.withUnsafeBufferPointer { pp in
                        for i in 0..<half {
                            let dIn = px[i] - px[half + i]
                            let v = dIn == 0 ? pp[i] : (pr[i] + pr[half + i]) / dIn
                            out[i] = v
                            out[half + i] = v
                        }
                    }
                }
            }
        }
        return out
    }
}

extension MaxPoolKernel {
    /// Eight floats `stride` apart.
    @inline(__always)
    static func strided(_ p: UnsafePointer<Float>, _ stride: Int) -> SIMD8<Float> {
        SIMD8(p[0], p[stride], p[2 * stride], p[3 * stride], p[4 * stride], p[5 * stride], p[6 * stride], p[7 * stride])
    }

    /// Whether no input position lies in two windows (the stride covers the window's span), as
    /// in every `nn.MaxPool1d(k)`.
    var disjointWindows: Bool { stride >= (kernel - 1) * dilation + 1 }

    /// ``reverse(_:)``'s rule where windows are disjoint, window by window instead of position by
    /// position: each position receives from at most one window per half, so only the two
    /// winners of each window pair need the division. The same float operations as the general
    /// rule, signed zeros included (a position that won nothing gets `0 / Δin`), so the same bits.
    func disjointRule(_ x: Tensor<Float>, _ y: Tensor<Float>, _ g: Tensor<Float>) throws -> Tensor<Float> {
        let length = x.shape[2], outLength = y.shape[2]
        let half = try halfCount(x, "the input of MaxPool")
        let halfRows = x.shape[0] * x.shape[1] / 2, outHalf = half / length * outLength
        let winners = argmax(x, outLength: outLength)
        return Tensor<Float>(shape: x.shape) { out in
            x.storage.withUnsafeBufferPointer { px in
                y.storage.withUnsafeBufferPointer { py in
                    g.storage.withUnsafeBufferPointer { pg in
                        winners.withUnsafeBufferPointer { pw in
                            // Positions that win nothing: (0 + 0) / Δin, or the plain gradient 0 where Δin = 0.
                            var i = 0
                            while i + 8 <= half {
                                let a = UnsafeRawPointer(px.baseAddress! + i).loadUnaligned(as: SIMD8<Float>.self)
                                let b = UnsafeRawPointer(px.baseAddress! + half + i).loadUnaligned(as: SIMD8<Float>.self)
                                let d = a - b
                                // 0 / Δin without the division: a zero with Δin's sign, +0 where Δin is ±0
                                // (the plain gradient), and Δin itself where it is NaN (as the division returns it).
                                let signed = unsafeBitCast(unsafeBitCast(d, to: SIMD8<UInt32>.self) & 0x8000_0000, to: SIMD8<Float>.self)
                                let zero = signed.replacing(with: 0, where: d .== 0).replacing(with: d, where: d .!= d)
                                UnsafeMutableRawPointer(out.baseAddress! + i).storeBytes(of: zero, as: SIMD8<Float>.self)
                                UnsafeMutableRawPointer(out.baseAddress! + half + i).storeBytes(of: zero, as: SIMD8<Float>.self)
                                i += 8
                            }
                            while i < half {
                                let d = px[i] - px[half + i]
                                let v: Float = d == 0 ? 0 : 0 / d
                                out[i] = v
                                out[half + i] = v
                                i += 1
                            }
                            // Each window pair: the example's winner and the reference's, in the example's coordinates.
                            for r in 0..<halfRows {
                                for j in 0..<outLength {
                                    let o = r * outLength + j, oR = o + outHalf
                                    let xo = py[o], ro = py[oR]
                                    let top = max(xo, ro)
                                    let routedX: Float = 0 + pg[o] * (top - ro), routedR: Float = 0 + pg[oR] * (xo - top)
                                    let plainX: Float = 0 + pg[o]
                                    let wX = r * length + pw[o], wR = r * length + pw[oR]
                                    if wX == wR {
                                        let d = px[wX] - px[half + wX]
                                        let v = d == 0 ? plainX : (routedX + routedR) / d
                                        out[wX] = v
                                        out[half + wX] = v
                                    } else {
                                        let d = px[wX] - px[half + wX]
                                        let v = d == 0 ? plainX : (routedX + 0) / d
                                        out[wX] = v
                                        out[half + wX] = v
                                        let dR = px[wR] - px[half + wR]
                                        let vR = dR == 0 ? 0 : (0 + routedR) / dR
                                        out[wR] = vR
                                        out[half + wR] = vR
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
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
