import LoomTensor

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// Element-wise functions with parameters, as `torch.onnx.export` writes activations beyond
/// ReLU and sigmoid: Elu, LeakyRelu, Selu, Celu, Gelu, Mish, Clip (ReLU6, Hardtanh),
/// HardSigmoid, HardSwish, Softsign, Erf and Reciprocal.
///
/// Forward, reverse rule, row sharing and cost live in this file. Under deep-lift-shap the
/// functions tangermeme 1.6 registers as non-linear modules (ELU, LeakyReLU, SELU, CELU, GELU,
/// Mish, ReLU6) take DeepLIFT's rescale rule; the others (HardSigmoid, Hardswish, Softsign, and
/// Erf and Reciprocal, which are parts of larger functions) their plain gradient.
struct ActivationKernel: Kernel {
    enum Function: Sendable, Equatable {
        case elu(alpha: Float), leakyRelu(alpha: Float), selu(alpha: Float, gamma: Float), celu(alpha: Float)
        case gelu(tanh: Bool), mish, hardSigmoid(alpha: Float, beta: Float), hardSwish, softsign, erf, reciprocal
        /// Bounds from attributes (opset < 11) or from inputs 1 and 2 (opset 11 on).
        case clip(min: Float?, max: Float?)
    }
    let function: Function

    /// Builds the kernel of `op` from its attributes.
    init(_ op: String, attributes a: Attributes) throws {
        switch op {
        case "Elu": function = .elu(alpha: try a.float("alpha", default: 1))
        case "LeakyRelu": function = .leakyRelu(alpha: try a.float("alpha", default: 0.01))
        case "Selu":
            function = .selu(
                alpha: try a.float("alpha", default: 1.67326319217681884765625),
                gamma: try a.float("gamma", default: 1.05070102214813232421875))
        case "Celu": function = .celu(alpha: try a.float("alpha", default: 1))
        case "Gelu":
            switch try a.string("approximate", default: "none") {
            case "none": function = .gelu(tanh: false)
            case "tanh": function = .gelu(tanh: true)
            case let other: throw KernelError("Gelu approximate '\(other)' is not one of none, tanh")
            }
        case "Mish": function = .mish
        case "HardSigmoid": function = .hardSigmoid(alpha: try a.float("alpha", default: 0.2), beta: try a.float("beta", default: 0.5))
        case "HardSwish": function = .hardSwish
        case "Softsign": function = .softsign
        case "Erf": function = .erf
        case "Reciprocal": function = .reciprocal
        case "Clip":
            if a.opset < 11 {
                function = .clip(min: try a.float("min", default: -.greatestFiniteMagnitude), max: try a.float("max", default: .greatestFiniteMagnitude))
            } else {
                function = .clip(min: nil, max: nil)
            }
        default: throw KernelError("\(op) is not an activation")
        }
        guard case .celu(let alpha) = function, alpha == 0 else { return }
        throw KernelError("Celu alpha must not be 0")
    }

    /// The operators this kernel runs.
    static let operators = [
        "Elu", "LeakyRelu", "Selu", "Celu", "Gelu", "Mish", "HardSigmoid", "HardSwish", "Softsign", "Erf",
        "Reciprocal", "Clip"
    ]

    /// The function with the step's bounds filled in (Clip reads them from inputs 1 and 2).
    func resolved(_ inputs: [Value?]) throws -> Function {
        guard case .clip(let lo, let hi) = function, lo == nil && hi == nil else { return function }
        func bound(_ k: Int, _ fallback: Float) throws -> Float {
            guard let v = inputs.optional(k) else { return fallback }
            let t = try v.float(k == 1 ? "min" : "max")
            guard t.count == 1 else { throw KernelError("Clip's \(k == 1 ? "min" : "max") must be a scalar, got shape \(t.shape)") }
            return t.storage[0]
        }
        return .clip(min: try bound(1, -.greatestFiniteMagnitude), max: try bound(2, .greatestFiniteMagnitude))
    }

    func run(_ inputs: [Value?]) throws -> [Value] {
        let x = try inputs.required(0, "X").float("X")
        let f = try resolved(inputs)
        return [
            .float(
                Tensor(shape: x.shape) { out in
                    x.storage.withUnsafeBufferPointer { p in
                        // The function chosen once, outside the loop, so that each loop is a plain one.
                        switch f {
                        case .erf: VectorMath.apply(.erf, p, into: out)
                        case .mish: VectorMath.apply(.mish, p, into: out)
                        case .elu(let a): VectorMath.apply(.elu, p, into: out, a)
                        case .selu(let a, let g): VectorMath.apply(.selu, p, into: out, a, g)
                        case .gelu(false): VectorMath.apply(.gelu, p, into: out)
                        case .leakyRelu(let a): for i in 0..<out.count { out[i] = p[i] >= 0 ? p[i] : a * p[i] }
                        case .clip(let lo, let hi):
                            let (l, h) = (lo ?? -.greatestFiniteMagnitude, hi ?? .greatestFiniteMagnitude)
                            for i in 0..<out.count { out[i] = Swift.min(h, Swift.max(l, p[i])) }
                        default: for i in 0..<out.count { out[i] = Self.value(f, p[i]) }
                        }
                    }
                })
        ]
    }

    /// erf through ``VectorMath`` (the forward pass's lanes): glibc's erff took half of a GELU model's time.
    @inline(__always)
    static func erf(_ x: Float) -> Float { VectorMath.scalar(.erf, x) }

    static let sqrt2OverPi: Float = 0.7978845608028654
    static let invSqrt2: Float = 0.7071067811865476
    static let invSqrt2Pi: Float = 0.3989422804014327

    @inline(__always)
    static func value(_ f: Function, _ x: Float) -> Float {
        switch f {
        case .elu(let a): return VectorMath.scalar(.elu, x, a)
        case .leakyRelu(let a): return x >= 0 ? x : a * x
        case .selu(let a, let g): return VectorMath.scalar(.selu, x, a, g)
        case .celu(let a): return Swift.max(0, x) + Swift.min(0, a * (expf(x / a) - 1))
        case .gelu(false): return VectorMath.scalar(.gelu, x)
        case .gelu(true): return 0.5 * x * (1 + tanhf(sqrt2OverPi * (x + 0.044715 * x * x * x)))
        case .mish: return VectorMath.scalar(.mish, x)
        case .hardSigmoid(let a, let b): return Swift.max(0, Swift.min(1, a * x + b))
        case .hardSwish: return x * Swift.max(0, Swift.min(1, x / 6 + 0.5))
        case .softsign: return x / (1 + Swift.abs(x))
        case .erf: return erf(x)
        case .reciprocal: return 1 / x
        case .clip(let lo, let hi): return Swift.min(hi ?? .greatestFiniteMagnitude, Swift.max(lo ?? -.greatestFiniteMagnitude, x))
        }
    }

    /// The derivative at `x` (output `y`), as torch's autograd computes it.
    @inline(__always)
    static func derivative(_ f: Function, _ x: Float, _ y: Float) -> Float {
        switch f {
        case .elu(let a): return x > 0 ? 1 : a * VectorMath.scalar(.exp, x)
        case .leakyRelu(let a): return x > 0 ? 1 : a
        case .selu(let a, let g): return x > 0 ? g : g * a * VectorMath.scalar(.exp, x)
        case .celu(let a): return x > 0 ? 1 : VectorMath.scalar(.exp, x / a)
        case .gelu(false): return 0.5 * (1 + erf(x * invSqrt2)) + x * invSqrt2Pi * VectorMath.scalar(.exp, -0.5 * x * x)
        case .gelu(true):
            let inner = sqrt2OverPi * (x + 0.044715 * x * x * x)
            let t = VectorMath.scalar(.tanh, inner)
            return 0.5 * (1 + t) + 0.5 * x * (1 - t * t) * sqrt2OverPi * (1 + 3 * 0.044715 * x * x)
        case .mish:
            let t = VectorMath.scalar(.tanh, VectorMath.scalar(.softplus, x))
            return t + x * (1 - t * t) * (1 / (1 + VectorMath.scalar(.exp, -x)))
        case .hardSigmoid(let a, let b):
            let z = a * x + b
            return z > 0 && z < 1 ? a : 0
        case .hardSwish: return x < -3 ? 0 : (x > 3 ? 1 : x / 3 + 0.5)
        case .softsign:
            let d = 1 + Swift.abs(x)
            return 1 / (d * d)
        case .erf: return 2 / Float.pi.squareRoot() * VectorMath.scalar(.exp, -x * x)
        case .reciprocal: return -y * y
        case .clip(let lo, let hi): return x >= (lo ?? -.greatestFiniteMagnitude) && x <= (hi ?? .greatestFiniteMagnitude) ? 1 : 0
        }
    }

}

extension ActivationKernel: ReversibleKernel {
    func reverse(_ step: ReverseStep) throws -> [Tensor<Float>?] {
        let rest = Array(step.noGradients.dropFirst())
        guard step.needs(0) else { return [nil] + rest }
        let f = try resolved([nil] + (1..<max(1, step.inputCount)).map(step.inputValue))
        if step.useRule && step.examplesOnly { return [try rescale(step, what: "the input of \(function)") { Self.derivative(f, $1, $2) }] + rest }
        let x = try step.input(0), y = try step.output(0), g = try step.grad()
        let gx =
            step.useRule
            ? try rescale(x, y, g, what: "the input of \(function)") { Self.derivative(f, $1, $2) }
            : plainGradient(g, Self.derivatives(f, x, y))
        return [gx] + rest
    }

    var rulesOnExampleHalf: Bool { true }

    /// ``derivative(_:_:_:)`` at every element, with the exponentials, erf and tanh eight lanes at
    /// a time (``VectorMath``); the functions without them run the scalar form in a plain loop.
    static func derivatives(_ f: Function, _ x: Tensor<Float>, _ y: Tensor<Float>) -> Tensor<Float> {
        var scratch = [Float]()
        return Tensor(shape: x.shape) { d in
            x.storage.withUnsafeBufferPointer { px in
                y.storage.withUnsafeBufferPointer { py in
                    /// `g` of `inner(x)` at every element, into `out`.
                    func map(_ g: VectorMath.Function, _ out: UnsafeMutableBufferPointer<Float>, _ inner: (Float) -> Float) {
                        for i in 0..<out.count { out[i] = inner(px[i]) }
                        VectorMath.apply(g, UnsafeBufferPointer(out), into: out)
                    }
                    func withScratch(_ body: (UnsafeMutableBufferPointer<Float>) -> Void) {
                        scratch = [Float](repeating: 0, count: d.count)
                        scratch.withUnsafeMutableBufferPointer { body($0) }
                    }
                    switch f {
                    case .elu(let a):
                        VectorMath.apply(.exp, px, into: d)
                        for i in 0..<d.count { d[i] = px[i] > 0 ? 1 : a * d[i] }
                    case .selu(let a, let g):
                        VectorMath.apply(.exp, px, into: d)
                        for i in 0..<d.count { d[i] = px[i] > 0 ? g : g * a * d[i] }
                    case .celu(let a):
                        map(.exp, d) { $0 / a }
                        for i in 0..<d.count { d[i] = px[i] > 0 ? 1 : d[i] }
                    case .gelu(false):
                        map(.erf, d) { $0 * invSqrt2 }
                        withScratch { e in
                            map(.exp, e) { -0.5 * $0 * $0 }
                            for i in 0..<d.count { d[i] = 0.5 * (1 + d[i]) + px[i] * invSqrt2Pi * e[i] }
                        }
                    case .gelu(true):
                        map(.tanh, d) { sqrt2OverPi * ($0 + 0.044715 * $0 * $0 * $0) }
                        for i in 0..<d.count {
                            let x = px[i], t = d[i]
                            d[i] = 0.5 * (1 + t) + 0.5 * x * (1 - t * t) * sqrt2OverPi * (1 + 3 * 0.044715 * x * x)
                        }
                    case .mish:
                        VectorMath.apply(.softplus, px, into: d)
                        VectorMath.apply(.tanh, UnsafeBufferPointer(d), into: d)
                        withScratch { e in
                            map(.exp, e) { -$0 }
                            for i in 0..<d.count {
                                let t = d[i]
                                d[i] = t + px[i] * (1 - t * t) * (1 / (1 + e[i]))
                            }
                        }
                    case .erf:
                        map(.exp, d) { -$0 * $0 }
                        for i in 0..<d.count { d[i] = 2 / Float.pi.squareRoot() * d[i] }
                    case .leakyRelu(let a): for i in 0..<d.count { d[i] = px[i] > 0 ? 1 : a }
                    default: for i in 0..<d.count { d[i] = derivative(f, px[i], py[i]) }
                    }
                }
            }
        }
    }
}

extension ActivationKernel: PlainRowWiseKernel {}
