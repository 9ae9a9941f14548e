import LoomTensor

/// What a reverse rule sees of one node: its forward values, the gradients of its outputs,
/// and which inputs need a gradient.
///
/// The batch axis of every activation holds the examples first and their references
/// second, in two equal halves, which is what DeepLIFT's rules compare.
struct ReverseStep {
    /// The node's forward inputs (nil where absent).
    let inputs: [Value?]
    /// The node's forward outputs.
    let outputs: [Value]
    /// The gradient of the attributed output with respect to each output (nil: none flows there).
    let gradOutputs: [Tensor<Float>?]
    /// Which inputs depend on X, and so need a gradient.
    let needs: [Bool]
    /// Whether the node takes its DeepLIFT rule (a module tangermeme registers) or its plain gradient
    /// (a functional call); see ``DeepLiftRules``. Kernels without a rule ignore it.
    var useRule = true

    func input(_ i: Int) throws -> Tensor<Float> { try inputs.required(i, "input \(i)").float("input \(i)") }
    func output(_ i: Int) throws -> Tensor<Float> { try outputs[i].float("output \(i)") }
    /// The gradient of output `i`, zero if none flows there.
    func grad(_ i: Int = 0) throws -> Tensor<Float> {
        if let g = gradOutputs[i] { return g }
        return Tensor(shape: outputs[i].shape, repeating: 0)
    }
    func needs(_ i: Int) -> Bool { i < needs.count && needs[i] }
}

/// A kernel that can pass gradients back from its outputs to its inputs, with DeepLIFT's rules where they apply.
///
/// Element-wise activations use the rescale rule; MaxPool and Softmax use tangermeme's
/// rules; everything else, being linear or treated as linear by tangermeme, uses its
/// ordinary gradient.
protocol ReversibleKernel: Kernel {
    /// The gradient for each input (nil for inputs that do not need one).
    func reverse(_ step: ReverseStep) throws -> [Tensor<Float>?]
}

/// Sums a gradient of a broadcast result back down to an operand's shape.
func sumToShape(_ g: Tensor<Float>, _ target: [Int]) throws -> Tensor<Float> {
    if g.shape == target { return g }
    if target.elementCount == 1 {
        var s: Float = 0
        for v in g.storage { s += v }
        return Tensor(shape: target, storage: [s])
    }
    let strides = broadcastStrides(target, to: g.shape)
    let rank = g.shape.count
    var out = [Float](repeating: 0, count: target.elementCount)
    guard g.count > 0 else { return Tensor(shape: target, storage: out) }
    var index = [Int](repeating: 0, count: rank)
    var offset = 0
    g.storage.withUnsafeBufferPointer { p in
        for i in 0..<g.count {
            out[offset] += p[i]
            var axis = rank - 1
            while axis >= 0 {
                index[axis] += 1
                offset += strides[axis]
                if index[axis] < g.shape[axis] { break }
                offset -= strides[axis] * g.shape[axis]
                index[axis] = 0
                axis -= 1
            }
        }
    }
    return Tensor(shape: target, storage: out)
}

/// Spreads `g` (shaped like a reduced or broadcast operand) over `shape`.
func broadcastTo(_ g: Tensor<Float>, _ shape: [Int]) throws -> Tensor<Float> {
    try broadcastBinary(Tensor(shape: shape, repeating: 0), g) { $1 }
}

/// Routes gradients back through an op that only moves or copies elements.
///
/// The op runs forward once more on int64 position tensors in place of its float
/// inputs; each output element then names the input element it came from, and the
/// output gradient is added there. This covers Slice, Gather, Transpose and Concat
/// with the forward kernel's own index arithmetic.
func routeBack(_ kernel: any Kernel, _ step: ReverseStep) throws -> [Tensor<Float>?] {
    var probes = step.inputs
    var offsets: [Int] = []
    var total = 0
    for (i, v) in step.inputs.enumerated() {
        offsets.append(total)
        guard case .float(let t)? = v else { continue }
        probes[i] = .int64(Tensor(shape: t.shape, storage: (0..<t.count).map { Int64(total + $0) }))
        total += t.count
    }
    // No float input: the step moves integers (shapes, indices), through which no gradient flows.
    guard total > 0 else { return step.inputs.map { _ in nil } }
    let routed = try kernel.run(probes)
    var flat = [Float](repeating: 0, count: total)
    for (k, out) in routed.enumerated() where k < step.gradOutputs.count {
        guard let g = step.gradOutputs[k] else { continue }
        let sources = try out.int64("routed output")
        guard sources.count == g.count else { throw KernelError("gradient of \(g.shape) for an output of \(sources.shape)") }
        let stray = sources.storage.withUnsafeBufferPointer { ps in
            g.storage.withUnsafeBufferPointer { pg in
                flat.withUnsafeMutableBufferPointer { pf in
                    for j in 0..<ps.count {
                        let src = Int(ps[j])
                        guard src >= 0 && src < total else { return true }
                        pf[src] += pg[j]
                    }
                    return false
                }
            }
        }
        if stray { throw KernelError("an output element does not come from a float input") }
    }
    return step.inputs.enumerated().map { i, v in
        guard step.needs(i), case .float(let t)? = v else { return nil }
        return Tensor(shape: t.shape, storage: Array(flat[offsets[i]..<(offsets[i] + t.count)]))
    }
}

/// The halves of a batch-first tensor: examples, then references.
func halfCount(_ t: Tensor<Float>, _ what: String) throws -> Int {
    guard t.count % 2 == 0, (t.shape.first ?? 0) % 2 == 0 else {
        throw KernelError("\(what) of shape \(t.shape) does not split into example and reference halves")
    }
    return t.count / 2
}
