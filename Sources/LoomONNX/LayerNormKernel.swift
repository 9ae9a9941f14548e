import LoomTensor

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// LayerNormalization (opset 17): each row over the axes from `axis` on is normalized to mean 0
/// and variance 1 (`epsilon` added), then scaled and shifted; outputs Y and, if the graph asks,
/// the mean and the inverse standard deviation. Forward, reverse, row sharing here.
///
/// Under deep-lift-shap it takes its ordinary gradient (see docs/onnx.md).
struct LayerNormKernel: Kernel {
    let axis: Int
    let epsilon: Float

    init(attributes a: Attributes) throws {
        axis = try a.int("axis", default: -1)
        epsilon = try a.float("epsilon", default: 1e-5)
    }

    /// Rows (the leading axes) and the length of each (the normalized axes).
    func layout(_ x: Tensor<Float>) throws -> (rows: Int, length: Int, axis: Int) {
        let a = try normalizeAxis(axis, rank: x.rank)
        return (Array(x.shape[..<a]).elementCount, Array(x.shape[a...]).elementCount, a)
    }

    /// Scale or bias broadcast to one row's length.
    func perElement(_ t: Tensor<Float>?, length: Int, shape: ArraySlice<Int>, fill: Float, _ what: String) throws -> [Float] {
        guard let t else { return [Float](repeating: fill, count: length) }
        return try broadcast(t, to: Array(shape)).storage
    }

    /// A row's mean and `1/√(variance + ε)`, its sums in eight lanes (``VectorMath/sum(_:_:)``).
    @inline(__always)
    func statistics(_ row: UnsafePointer<Float>, _ length: Int) -> (mean: Float, inverse: Float) {
        let mean = VectorMath.sum(row, length) / Float(length)
        let variance = VectorMath.squaredDeviations(row, length, from: mean) / Float(length)
        return (mean, 1 / sqrtf(variance + epsilon))
    }

    func run(_ inputs: [Value?]) throws -> [Value] {
        let x = try inputs.required(0, "X").float("X")
        let (rows, length, a) = try layout(x)
        guard length > 0 else { throw KernelError("normalized axes of \(x.shape) from \(axis) are empty") }
        let scale = try perElement(try inputs.required(1, "Scale").float("Scale"), length: length, shape: x.shape[a...], fill: 1, "Scale")
        let bias = try perElement(try inputs.optional(2)?.float("B"), length: length, shape: x.shape[a...], fill: 0, "B")
        var means = [Float](repeating: 0, count: rows), inverses = [Float](repeating: 0, count: rows)
        let y = Tensor<Float>(shape: x.shape) { out in
            x.storage.withUnsafeBufferPointer { p in
                scale.withUnsafeBufferPointer { s in
                    bias.withUnsafeBufferPointer { b in
                        for r in 0..<rows {
                            let row = p.baseAddress! + r * length, dst = out.baseAddress! + r * length
                            let (mean, inv) = statistics(row, length)
                            means[r] = mean; inverses[r] = inv
                            for i in 0..<length { dst[i] = (row[i] - mean) * inv * s[i] + b[i] }
                        }
                    }
                }
            }
        }
        let statShape = Array(x.shape[..<a]) + [Int](repeating: 1, count: x.rank - a)
        return [.float(y), .float(Tensor(shape: statShape, storage: means)), .float(Tensor(shape: statShape, storage: inverses))]
    }
}

extension LayerNormKernel: ReversibleKernel {
    /// The gradient of x: `inv/D · (D·h − Σh − x̂·Σ(h·x̂))` per row, with h = g·scale and x̂ the normalized x.
    /// Gradients reach X only through Y; the statistics outputs are taken as constants.
    func reverse(_ step: ReverseStep) throws -> [Tensor<Float>?] {
        guard step.needs(0) else { return step.noGradients }
        let x = try step.input(0), g = try step.grad(0)
        let (rows, length, a) = try layout(x)
        let scale = try perElement(try step.input(1), length: length, shape: x.shape[a...], fill: 1, "Scale")
        if step.useRule { return [try deepLiftRule(x, g, rows: rows, length: length, scale: scale)] + step.noGradients.dropFirst() }
        let dx = Tensor<Float>(shape: x.shape) { out in
            x.storage.withUnsafeBufferPointer { p in
                g.storage.withUnsafeBufferPointer { q in
                    let n = Float(length)
                    for r in 0..<rows {
                        let base = r * length
                        let (mean, inv) = statistics(p.baseAddress! + base, length)
                        var sumH: Float = 0, sumHX: Float = 0
                        for i in 0..<length {
                            let h = q[base + i] * scale[i]
                            sumH += h
                            sumHX += h * (p[base + i] - mean) * inv
                        }
                        for i in 0..<length {
                            let h = q[base + i] * scale[i], xhat = (p[base + i] - mean) * inv
                            out[base + i] = inv / n * (n * h - sumH - xhat * sumHX)
                        }
                    }
                }
            }
        }
        return [dx] + step.noGradients.dropFirst()
    }
}

extension LayerNormKernel {
    /// tangermeme 1.6's DeepLIFT rule for `nn.LayerNorm`, per example/reference pair of rows:
    /// `v̄ (g̃ − mean g̃) + (Δv/Δσ²) (A + A₀)/(2D) Σ g̃ (A + A₀)`, with g̃ = g·scale, A = x − μ,
    /// v = (σ² + ε)^−½, v̄ the pair's mean of v; where Δσ² ≈ 0 the ratio is its limit −½(σ̄² + ε)^−³ᐟ².
    func deepLiftRule(_ x: Tensor<Float>, _ g: Tensor<Float>, rows: Int, length: Int, scale: [Float]) throws -> Tensor<Float> {
        let n = try halfCount(x, "the input of LayerNormalization")
        let halfRows = n / length
        let d = Float(length)
        return Tensor(shape: x.shape) { out in
            x.storage.withUnsafeBufferPointer { p in
                g.storage.withUnsafeBufferPointer { q in
                    for r in 0..<halfRows {
                        let (b, b0) = (r * length, (halfRows + r) * length)
                        var mu: Float = 0, mu0: Float = 0
                        for i in 0..<length { mu += p[b + i]; mu0 += p[b0 + i] }
                        mu /= d; mu0 /= d
                        var variance: Float = 0, variance0: Float = 0
                        for i in 0..<length {
                            let (u, u0) = (p[b + i] - mu, p[b0 + i] - mu0)
                            variance += u * u; variance0 += u0 * u0
                        }
                        variance /= d; variance0 /= d
                        let v = 1 / sqrtf(variance + epsilon), v0 = 1 / sqrtf(variance0 + epsilon)
                        let dSigma = variance - variance0
                        let ratio = abs(dSigma) < 1e-6 ? -0.5 * powf((variance + variance0) / 2 + epsilon, -1.5) : (v - v0) / dSigma
                        let vMean = (v + v0) / 2
                        for side in 0..<2 {
                            let base = side == 0 ? b : b0
                            var gMean: Float = 0, dot: Float = 0
                            for i in 0..<length {
                                let gt = q[base + i] * scale[i]
                                gMean += gt
                                dot += gt * ((p[b + i] - mu) + (p[b0 + i] - mu0))
                            }
                            gMean /= d
                            for i in 0..<length {
                                let gt = q[base + i] * scale[i]
                                let aSum = (p[b + i] - mu) + (p[b0 + i] - mu0)
                                out[base + i] = vMean * (gt - gMean) + ratio * aSum / (2 * d) * dot
                            }
                        }
                    }
                }
            }
        }
    }
}

/// Row-wise when the normalized axes leave the batch axis alone.
extension LayerNormKernel: RowWiseKernel {
    var rowInputs: RowInputs { .positions([0]) }
    func checkRows(_ facts: RowFacts) throws {
        guard facts.keepsBatch(axis, rank: facts.rank) else { throw NotRowWise() }
    }
}
