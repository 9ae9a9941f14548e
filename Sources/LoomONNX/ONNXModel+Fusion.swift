import LoomTensor

/// Forward fusion: runs of nodes that compute one known function become one step of the
/// forward pass, with the same bits (ForwardFusionTests compares them).
///
/// - A 1-D Conv and the Relu that alone reads it: the Relu runs on each example's output while
///   it is in cache.
/// - `Where(Greater(x, t), x, Softplus(x))`, the dynamo exporter's `nn.Softplus` (t = 20): Loom's
///   Softplus already gives x itself beyond 16, so the three nodes, with their int64 mask, are
///   one Softplus.
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
