import LoomTensor

/// Forward fusion: runs of nodes that compute one known function become one step of the
/// forward pass, with the same bits (ForwardFusionTests compares them).
///
/// - A 1-D Conv and the Relu that alone reads it: the Relu runs on each example's output while
///   it is in cache.
/// - `Where(Greater(x, t), x, Softplus(x))`, the dynamo exporter's `nn.Softplus` (t = 20): Loom's
///   Softplus already gives x itself beyond 16, so the three nodes, with their int64 mask, are
///   one Softplus.
/// - `Mul(Mul(x, Add(Erf(Div(x, a)), b)), c)`, the classic exporter's `nn.GELU`: one pass over x,
///   the same five float operations per element in the same order (``ErfChainKernel``).
///
/// The reverse pass keeps every node: its rules read the intermediate values.
extension ONNXModel {
    /// A node compiled to a kernel and its slots, before liveness is known.
    typealias BuiltStep = (kernel: any Kernel, inputs: [Int?], outputs: [Int], name: String, op: String)

    /// The threshold above which Loom's Softplus returns x exactly (e^−x is below half an ulp of x).
    static let softplusIdentityFrom: Float = 16

    /// `built` with the patterns above fused; values that a fused step hides must have no other reader and not be outputs.
    static func fusedForward(_ built: [BuiltStep], pinned: Set<Int>, constants: [Int: Value]) -> [BuiltStep] {
        var readers: [Int: Int] = [:]
        for step in built { for s in step.inputs.compactMap({ $0 }) { readers[s, default: 0] += 1 } }
        /// Whether `slot` is read by one step alone and is not a graph output.
        func hidden(_ slot: Int) -> Bool { readers[slot] == 1 && !pinned.contains(slot) }
        var fused: [BuiltStep] = []
        var i = 0
        while i < built.count {
            let b = built[i]
            if var conv = b.kernel as? ConvKernel, i + 1 < built.count, built[i + 1].op == "Relu", b.outputs.count == 1,
                built[i + 1].inputs == [b.outputs[0]], hidden(b.outputs[0])
            {
                conv.reluAfter = true
                fused.append((conv, b.inputs, built[i + 1].outputs, b.name, "Conv"))
                i += 2
                continue
            }
            if i + 4 < built.count, let gelu = erfChain(Array(built[i..<(i + 5)]), hidden: hidden, constants: constants) {
                fused.append(gelu)
                i += 5
                continue
            }
            if i + 2 < built.count, let softplus = thresholdedSoftplus(built[i], built[i + 1], built[i + 2], hidden: hidden, constants: constants) {
                fused.append(softplus)
                i += 3
                continue
            }
            fused.append(b)
            i += 1
        }
        return fused
    }

    /// `Where(Greater(x, t), x, Softplus(x))` in either order of its first two nodes, as one Softplus step.
    static func thresholdedSoftplus(
        _ a: BuiltStep, _ b: BuiltStep, _ c: BuiltStep, hidden: (Int) -> Bool, constants: [Int: Value]
    ) -> BuiltStep? {
        guard c.op == "Where", c.inputs.count == 3, c.outputs.count == 1 else { return nil }
        let (softplus, greater) = a.op == "Softplus" ? (a, b) : (b, a)
        guard softplus.op == "Softplus", greater.op == "Greater", softplus.inputs.count == 1, greater.inputs.count == 2,
            softplus.outputs.count == 1, greater.outputs.count == 1, let x = softplus.inputs[0], greater.inputs[0] == x,
            let t = greater.inputs[1], case .float(let threshold)? = constants[t], threshold.count == 1,
            threshold.storage[0] >= softplusIdentityFrom,
            c.inputs == [greater.outputs[0], x, softplus.outputs[0]], hidden(greater.outputs[0]), hidden(softplus.outputs[0])
        else { return nil }
        return (softplus.kernel, [x], c.outputs, c.name, "Softplus")
    }
}

extension ONNXModel {
    /// `Div(x, a)`, `Erf`, `Add(·, b)`, `Mul(x, ·)`, `Mul(·, c)` in that order (either operand order
    /// where the operation commutes), with scalar constants a, b, c, as one ``ErfChainKernel`` step.
    static func erfChain(_ n: [BuiltStep], hidden: (Int) -> Bool, constants: [Int: Value]) -> BuiltStep? {
        guard n.map(\.op) == ["Div", "Erf", "Add", "Mul", "Mul"], n.allSatisfy({ $0.outputs.count == 1 }),
            n.dropLast().allSatisfy({ hidden($0.outputs[0]) }), n[0].inputs.count == 2, let x = n[0].inputs[0]
        else { return nil }
        /// The scalar constant among `step`'s two inputs, if the other is `operand`.
        func scalar(_ step: BuiltStep, besides operand: Int, either: Bool) -> Float? {
            let ins = step.inputs.compactMap { $0 }
            guard ins.count == 2, step.inputs.count == 2 else { return nil }
            for (k, other) in [(1, 0), (0, 1)] where k == 1 || either {
                if ins[other] == operand, case .float(let t)? = constants[ins[k]], t.count == 1 { return t.storage[0] }
            }
            return nil
        }
        let (div, erf, add, mul, scale) = (n[0], n[1], n[2], n[3], n[4])
        guard let a = scalar(div, besides: x, either: false), erf.inputs == [div.outputs[0]],
            let b = scalar(add, besides: erf.outputs[0], either: true),
            Set(mul.inputs.compactMap { $0 }) == [x, add.outputs[0]], mul.inputs.count == 2,
            let c = scalar(scale, besides: mul.outputs[0], either: true)
        else { return nil }
        return (ErfChainKernel(divisor: a, offset: b, scale: c), [x], scale.outputs, scale.name, "Gelu")
    }
}

/// `((erf(x / a) + b) · x) · c` element by element, the classic export of GELU (a = √2, b = 1,
/// c = ½) as one pass: the same IEEE operations, in the same order, as its five nodes (erf
/// through ``VectorMath``, as the Erf kernel runs it), so the same bits.
struct ErfChainKernel: Kernel, PlainRowWiseKernel {
    let divisor: Float, offset: Float, scale: Float

    func run(_ inputs: [Value?]) throws -> [Value] {
        let x = try inputs.required(0, "X").float("X")
        return [
            .float(
                Tensor(shape: x.shape) { out in
                    x.storage.withUnsafeBufferPointer { VectorMath.apply(.erfChain, $0, into: out, divisor, offset, scale) }
                })
        ]
    }
}
