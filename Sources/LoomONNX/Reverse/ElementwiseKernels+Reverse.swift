import LoomTensor

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

extension BinaryKernel: ReversibleKernel {
    func reverse(_ step: ReverseStep) throws -> [Tensor<Float>?] {
        let g = try step.grad()
        var ga: Tensor<Float>? = nil, gb: Tensor<Float>? = nil
        if op == .add || op == .sub {
            // The operands' shapes alone.
            guard let aShape = step.inputShape(0), let bShape = step.inputShape(1) else { throw KernelError("an operand is missing") }
            if step.needs(0) { ga = try sumToShape(g, aShape) }
            if step.needs(1) { gb = try sumToShape(op == .add ? g : Tensor(shape: g.shape, storage: g.storage.map { -$0 }), bShape) }
            return [ga, gb]
        }
        let a = try step.input(0), b = try step.input(1)
        switch op {
        case .add, .sub: break
        case .mul:
            if step.needs(0) { ga = try sumToShape(try broadcastBinary(g, b, *), a.shape) }
            if step.needs(1) { gb = try sumToShape(try broadcastBinary(g, a, *), b.shape) }
        case .div:
            if step.needs(0) { ga = try sumToShape(try broadcastBinary(g, b, /), a.shape) }
            if step.needs(1) {
                let y = try step.output(0) // a / b
                gb = try sumToShape(try broadcastBinary(try broadcastBinary(g, y, *), b) { -$0 / $1 }, b.shape)
            }
        case .pow:
            if step.needs(0) {
                let d = try broadcastBinary(a, b) { $1 * powf($0, $1 - 1) }
                ga = try sumToShape(try broadcastBinary(g, d, *), a.shape)
            }
            if step.needs(1) {
                let d = try broadcastBinary(a, b) { powf($0, $1) * logf($0) }
                gb = try sumToShape(try broadcastBinary(g, d, *), b.shape)
            }
        }
        return [ga, gb]
    }
}

extension UnaryKernel: ReversibleKernel {
    /// The ordinary derivative at input `x` with output `y`, as torch computes it.
    @inline(__always)
    func derivative(_ x: Float, _ y: Float) -> Float {
        switch op {
        case .relu: return x > 0 ? 1 : 0
        case .sigmoid: return (1 - y) * y
        case .tanh: return 1 - y * y
        case .softplus:
            if x > 20 { return 1 }
            let z = VectorMath.scalar(.exp, x)
            return z / (z + 1)
        case .exp: return y
        case .log: return 1 / x
        case .neg: return -1
        case .abs: return x > 0 ? 1 : (x < 0 ? -1 : 0)
        case .sqrt: return 0.5 / y
        }
    }

    /// ``derivative(_:_:)`` at every element, softplus's exponentials eight lanes at a time.
    func derivatives(_ x: Tensor<Float>, _ y: Tensor<Float>) -> Tensor<Float> {
        Tensor(shape: x.shape) { d in
            x.storage.withUnsafeBufferPointer { px in
                y.storage.withUnsafeBufferPointer { py in
                    switch op {
                    case .relu: for i in 0..<d.count { d[i] = px[i] > 0 ? 1 : 0 }
                    case .sigmoid: for i in 0..<d.count { d[i] = (1 - py[i]) * py[i] }
                    case .tanh: for i in 0..<d.count { d[i] = 1 - py[i] * py[i] }
                    case .softplus:
                        VectorMath.apply(.exp, px, into: d)
                        for i in 0..<d.count { d[i] = px[i] > 20 ? 1 : d[i] / (d[i] + 1) }
                    default: for i in 0..<d.count { d[i] = derivative(px[i], py[i]) }
                    }
                }
            }
        }
    }

    func reverse(_ step: ReverseStep) throws -> [Tensor<Float>?] {
        guard step.needs(0) else { return [nil] }
        if step.useRule && step.examplesOnly { return [try rescale(step, what: "the input of \(op)") { derivative($1, $2) }] }
        let x = try step.input(0), y = try step.output(0), g = try step.grad()
        guard step.useRule else { return [plainGradient(g, derivatives(x, y))] }
        return [try rescale(x, y, g, what: "the input of \(op)") { derivative($1, $2) }]
    }

    var rulesOnExampleHalf: Bool { true }
}

/// DeepLIFT's rescale rule for an element-wise activation: `g · Δout/Δin` per example/reference
/// pair (the differences serve both halves), with the plain gradient where |Δin| < 1e-6.
///
/// `derivative(i, x, y)` is the plain derivative at element `i`.
func rescale(
    _ x: Tensor<Float>, _ y: Tensor<Float>, _ g: Tensor<Float>, what: String,
    derivative: (Int, Float, Float) -> Float
) throws -> Tensor<Float> {
    let n = try halfCount(x, what)
    return Tensor(shape: x.shape) { out in
        x.storage.withUnsafeBufferPointer { px in
            y.storage.withUnsafeBufferPointer { py in
                g.storage.withUnsafeBufferPointer { pg in
                    for i in 0..<n {
                        let dIn = px[i] - px[n + i]
                        if abs(dIn) < 1e-6 {
                            out[i] = pg[i] * derivative(i, px[i], py[i])
                            out[n + i] = pg[n + i] * derivative(n + i, px[n + i], py[n + i])
                        } else {
                            let ratio = (py[i] - py[n + i]) / dIn
                            out[i] = pg[i] * ratio
                            out[n + i] = pg[n + i] * ratio
                        }
                    }
                }
            }
        }
    }
}

/// ``rescale(_:_:_:what:derivative:)`` over the examples' half: each example's row against its
/// reference's, both read in place; the same operations, so the same bits.
func rescale(_ step: ReverseStep, what: String, derivative: (Int, Float, Float) -> Float) throws -> Tensor<Float> {
    guard let x = step.pairedInput(0), let y = step.pairedOutput(0), x.shape == y.shape else {
        throw KernelError("\(what) has no example and reference rows to compare")
    }
    let g = try step.grad()
    guard g.shape == x.shape else { throw KernelError("gradient of \(g.shape) for \(what) of \(x.shape)") }
    let size = x.rowSize
    return x.pairwise(y, g) { r, x0, x1, y0, y1, g0, o in
        // The ratio everywhere, in a loop the compiler vectorizes; then the plain derivative
        // where the input did not change (rare).
        for i in 0..<size {
            let ratio = (y0[i] - y1[i]) / (x0[i] - x1[i])
            o[i] = g0[i] * ratio
        }
        for i in 0..<size where abs(x0[i] - x1[i]) < 1e-6 {
            o[i] = g0[i] * derivative(r * size + i, x0[i], y0[i])
        }
    }
}

/// The plain gradient of an element-wise function, `g · f'(x)`, from `f'` at every element.
func plainGradient(_ g: Tensor<Float>, _ derivatives: consuming Tensor<Float>) -> Tensor<Float> {
    var d = derivatives
    d.storage.withUnsafeMutableBufferPointer { pd in
        g.storage.withUnsafeBufferPointer { pg in
            for i in 0..<pd.count { pd[i] = pg[i] * pd[i] }
        }
    }
    return d
}

extension IdentityKernel: ReversibleKernel {
    func reverse(_ step: ReverseStep) throws -> [Tensor<Float>?] { [step.needs(0) ? try step.grad() : nil] }
}

extension CastKernel: ReversibleKernel {
    func reverse(_ step: ReverseStep) throws -> [Tensor<Float>?] {
        // Float to float passes gradients; a cast to integers has none (as in torch).
        guard step.needs(0) else { return [nil] }
        if toFloat { return [try step.grad()] }
        return [Tensor(shape: step.inputs[0]?.shape ?? [], repeating: 0)]
    }
}

extension SoftmaxKernel: ReversibleKernel {
    /// The gradient of a functional softmax: `y · (g − Σ g·y)` along the axis.
    func plainGradient(y: Tensor<Float>, g: Tensor<Float>, axis a: Int) throws -> Tensor<Float> {
        let len = flattenTrailing ? Array(y.shape[a...]).elementCount : y.shape[a]
        let inner = flattenTrailing ? 1 : Array(y.shape[(a + 1)...]).elementCount
        let outer = Array(y.shape[..<a]).elementCount
        return Tensor(shape: y.shape) { out in
            for o in 0..<outer {
                for i in 0..<inner {
                    let base = o * len * inner + i
                    var dot: Float = 0
                    for k in 0..<len { dot += g.storage[base + k * inner] * y.storage[base + k * inner] }
                    for k in 0..<len { out[base + k * inner] = y.storage[base + k * inner] * (g.storage[base + k * inner] - dot) }
                }
            }
        }
    }

    /// tangermeme 1.6's DeepLIFT rule for softmax: the log-ratio product rule, over any axis but the batch's.
    func reverse(_ step: ReverseStep) throws -> [Tensor<Float>?] {
        guard step.needs(0) else { return [nil] }
        let x = try step.input(0), g = try step.grad()
        let a = try normalizeAxis(axis, rank: x.rank)
        guard step.useRule else { return [try plainGradient(y: try step.output(0), g: g, axis: a)] }
        guard a > 0 else {
            throw KernelError("softmax over the batch axis has no DeepLIFT rule: examples and references share that axis")
        }
        let len = flattenTrailing ? Array(x.shape[a...]).elementCount : x.shape[a]
        let inner = flattenTrailing ? 1 : Array(x.shape[(a + 1)...]).elementCount
        let n = try halfCount(x, "the input of Softmax")
        let outerPerHalf = n / (len * inner)
        let threshold: Float = 1e-6
        var out = [Float](repeating: 0, count: x.count)
        var aX = [Float](repeating: 0, count: len), aR = [Float](repeating: 0, count: len)
        var multXtoA = [Float](repeating: 0, count: len), yOverLogY = [Float](repeating: 0, count: len)
        x.storage.withUnsafeBufferPointer { px in
            g.storage.withUnsafeBufferPointer { pg in
                for o in 0..<outerPerHalf {
                    for i in 0..<inner {
                        let bx = o * len * inner + i, br = n + bx
                        var c = -Float.infinity
                        for k in 0..<len { c = max(c, px[bx + k * inner], px[br + k * inner]) }
                        var s: Float = 0, sRef: Float = 0
                        for k in 0..<len {
                            aX[k] = expf(px[bx + k * inner] - c); s += aX[k]
                            aR[k] = expf(px[br + k * inner] - c); sRef += aR[k]
                        }
                        let v = 1 / max(s, Float.leastNormalMagnitude), vRef = 1 / max(sRef, Float.leastNormalMagnitude)
                        let deltaV = v - vRef
                        let deltaLogV = logf(v) - logf(vRef)
                        let logVOverV = abs(deltaV) > threshold ? deltaLogV / deltaV : 1 / vRef
                        let reciprocal = -v * vRef
                        for k in 0..<len {
                            let dx = px[bx + k * inner] - px[br + k * inner]
                            multXtoA[k] = abs(dx) > threshold ? (aX[k] - aR[k]) / dx : aR[k]
                            let dLogY = dx + deltaLogV
                            let dy = aX[k] * v - aR[k] * vRef
                            yOverLogY[k] = abs(dLogY) > threshold ? dy / dLogY : aR[k] * vRef
                        }
                        for side in 0..<2 {
                            let base = side == 0 ? bx : br
                            var sum: Float = 0
                            for k in 0..<len { sum += pg[base + k * inner] * (yOverLogY[k] * logVOverV) * reciprocal }
                            for k in 0..<len {
                                out[base + k * inner] = pg[base + k * inner] * yOverLogY[k] + multXtoA[k] * sum
                            }
                        }
                    }
                }
            }
        }
        return [Tensor(shape: x.shape, storage: out)]
    }
}
