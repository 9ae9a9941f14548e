import LoomTensor

/// What a reverse rule sees of one node: its forward values, the gradients of its outputs,
/// and which inputs need a gradient.
///
/// The batch axis of every activation holds the examples first and their references
/// second, in two equal halves, which is what DeepLIFT's rules compare. Over the examples'
/// half alone (``examplesOnly``, ONNXModel+HalfReverse.swift) the values and gradients hold
/// the examples' rows, and a rule that compares them with their references' reads both
/// through ``pairedInput(_:)`` and ``pairedOutput(_:)``. Values are fetched when first read,
/// so a rule that needs only a shape (a convolution's) copies no rows.
struct ReverseStep {
    private enum Source {
        case values(inputs: [Value?], outputs: [Value])
        case examples(HalfValues, inputs: [Int?], outputs: [Int])
    }
    private let source: Source
    /// The gradient of the attributed output with respect to each output (nil: none flows there).
    let gradOutputs: [Tensor<Float>?]
    /// Which inputs depend on X, and so need a gradient.
    let needs: [Bool]
    /// Whether the node takes its DeepLIFT rule (a module tangermeme registers) or its plain gradient
    /// (a functional call); see ``DeepLiftRules``. Kernels without a rule ignore it.
    var useRule = true

    /// A step over the whole batch, with its forward values.
    init(inputs: [Value?], outputs: [Value], gradOutputs: [Tensor<Float>?], needs: [Bool]) {
        source = .values(inputs: inputs, outputs: outputs)
        self.gradOutputs = gradOutputs
        self.needs = needs
    }

    /// A step over the examples' rows of `values`, reading the slots of `step`.
    init(examples values: HalfValues, step: ONNXModel.Step, gradOutputs: [Tensor<Float>?], needs: [Bool]) {
        source = .examples(values, inputs: step.inputs, outputs: step.outputs)
        self.gradOutputs = gradOutputs
        self.needs = needs
    }

    /// Whether the values and gradients hold the examples' rows alone.
    var examplesOnly: Bool {
        if case .examples = source { return true }
        return false
    }

    var inputCount: Int {
        switch source {
        case .values(let inputs, _): inputs.count
        case .examples(_, let inputs, _): inputs.count
        }
    }

    /// Input `i`'s value (nil where absent).
    func inputValue(_ i: Int) -> Value? {
        switch source {
        case .values(let inputs, _): i < inputs.count ? inputs[i] : nil
        case .examples(let half, let inputs, _): i < inputs.count ? inputs[i].flatMap { try? half.value($0) } : nil
        }
    }

    /// The node's forward inputs (nil where absent). Over the examples' half each is sliced when
    /// read: a rule that needs a shape reads ``inputShape(_:)``, and one that needs a count ``inputCount``.
    var inputs: [Value?] { (0..<inputCount).map(inputValue) }

    /// A nil gradient for every input.
    var noGradients: [Tensor<Float>?] { [Tensor<Float>?](repeating: nil, count: inputCount) }

    /// The node's forward outputs.
    var outputs: [Value] {
        switch source {
        case .values(_, let outputs): outputs
        case .examples(let half, _, let outputs): outputs.compactMap { try? half.value($0) }
        }
    }

    /// Whether input `i` is a float32 value, without fetching it.
    func inputIsFloat(_ i: Int) -> Bool {
        switch source {
        case .values(let inputs, _):
            if i < inputs.count, case .float? = inputs[i] { return true }
            return false
        case .examples(let half, let inputs, _): return i < inputs.count && inputs[i].map { half.isFloat($0) } == true
        }
    }

    /// Input `i`'s shape, without fetching its values.
    func inputShape(_ i: Int) -> [Int]? {
        switch source {
        case .values(let inputs, _): i < inputs.count ? inputs[i]?.shape : nil
        case .examples(let half, let inputs, _): i < inputs.count ? inputs[i].flatMap { half.shape($0) } : nil
        }
    }

    /// Output `i`'s shape, without fetching its values.
    func outputShape(_ i: Int) -> [Int]? {
        switch source {
        case .values(_, let outputs): i < outputs.count ? outputs[i].shape : nil
        case .examples(let half, _, let outputs): i < outputs.count ? half.shape(outputs[i]) : nil
        }
    }

    /// Input `i`'s rows for the examples and for their references, over the examples' half.
    func pairedInput(_ i: Int) -> PairedRows? {
        guard case .examples(let half, let inputs, _) = source, i < inputs.count, let slot = inputs[i] else { return nil }
        return half.full.pairedRows(slot, half.rows)
    }

    /// Output `i`'s rows for the examples and for their references, over the examples' half.
    func pairedOutput(_ i: Int) -> PairedRows? {
        guard case .examples(let half, _, let outputs) = source, i < outputs.count else { return nil }
        return half.full.pairedRows(outputs[i], half.rows)
    }

    func input(_ i: Int) throws -> Tensor<Float> {
        guard let value = inputValue(i) else { throw KernelError("input \(i) is missing") }
        return try value.float("input \(i)")
    }
    func output(_ i: Int) throws -> Tensor<Float> {
        let value: Value?
        switch source {
        case .values(_, let outputs): value = i < outputs.count ? outputs[i] : nil
        case .examples(let half, _, let outputs): value = i < outputs.count ? try half.value(outputs[i]) : nil
        }
        guard let value else { throw KernelError("output \(i) is missing") }
        return try value.float("output \(i)")
    }
    /// The gradient of output `i`, zero if none flows there.
    func grad(_ i: Int = 0) throws -> Tensor<Float> {
        if let g = gradOutputs[i] { return g }
        guard let shape = outputShape(i) else { throw KernelError("output \(i) is missing") }
        return Tensor(shape: shape, repeating: 0)
    }
    func needs(_ i: Int) -> Bool { i < needs.count && needs[i] }
}

/// A float value's rows on both sides of a DeepLIFT pass, read in place: example `r`'s row and
/// its reference's are rows `examples[r]` and `references[r]` of `tensor` (which holds the
/// distinct rows, where the forward pass computed them once per distinct sequence).
struct PairedRows {
    let tensor: Tensor<Float>
    let examples: ArraySlice<Int>
    let references: ArraySlice<Int>

    /// Elements per row.
    var rowSize: Int { Array(tensor.shape.dropFirst()).elementCount }
    /// The examples' shape: P rows.
    var shape: [Int] { [examples.count] + tensor.shape.dropFirst() }

    /// A tensor of the examples' shape, written row by row: `body(r, x0, x1, y0, y1, g0, out)` gets
    /// example `r`'s row of `self` (x0) and its reference's (x1), the same of `y`, row `r` of `g`,
    /// and row `r` of the result. `y` and `g` have this shape.
    typealias Row = UnsafePointer<Float>
    func pairwise(
        _ y: PairedRows, _ g: Tensor<Float>, _ body: (Int, Row, Row, Row, Row, Row, UnsafeMutablePointer<Float>) -> Void
    ) -> Tensor<Float> {
        let size = rowSize
        let (xe, xr, ye, yr) = (Array(examples), Array(references), Array(y.examples), Array(y.references))
        return Tensor(shape: shape) { out in
            tensor.storage.withUnsafeBufferPointer { px in
                y.tensor.storage.withUnsafeBufferPointer { py in
                    g.storage.withUnsafeBufferPointer { pg in
                        for r in 0..<xe.count {
                            body(
                                r, px.baseAddress! + xe[r] * size, px.baseAddress! + xr[r] * size, py.baseAddress! + ye[r] * size,
                                py.baseAddress! + yr[r] * size, pg.baseAddress! + r * size, out.baseAddress! + r * size)
                        }
                    }
                }
            }
        }
    }
}

/// A kernel that can pass gradients back from its outputs to its inputs, with DeepLIFT's rules where they apply.
///
/// Element-wise activations use the rescale rule; MaxPool and Softmax use tangermeme's
/// rules; everything else, being linear or treated as linear by tangermeme, uses its
/// ordinary gradient.
protocol ReversibleKernel: Kernel {
    /// The gradient for each input (nil for inputs that do not need one).
    func reverse(_ step: ReverseStep) throws -> [Tensor<Float>?]
    /// Whether the rule, given a step over the examples' half (``ReverseStep/examplesOnly``),
    /// reads the references' rows itself (``ReverseStep/pairedInput(_:)``). If not, the reverse
    /// pass gives it the whole batch, with the examples' gradient in both halves. The default: no.
    var rulesOnExampleHalf: Bool { get }
    /// Whether an example row's input gradient reads its reference's output gradient (tangermeme's
    /// MaxPool rule sums the two): the reverse pass then needs the references' gradients too
    /// (ONNXModel+HalfReverse.swift). The default: no.
    func mixesGradientHalves(useRule: Bool) -> Bool
}

extension ReversibleKernel {
    var reversible: (any ReversibleKernel)? { self }
    func mixesGradientHalves(useRule: Bool) -> Bool { false }
    var rulesOnExampleHalf: Bool { false }
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
    // Float inputs are read for their shapes alone.
    var probes = [Value?](repeating: nil, count: step.inputCount)
    var offsets: [Int] = []
    var total = 0
    var floatShapes = [[Int]?](repeating: nil, count: probes.count)
    for i in probes.indices {
        offsets.append(total)
        guard step.inputIsFloat(i), let shape = step.inputShape(i) else {
            probes[i] = step.inputValue(i)
            continue
        }
        floatShapes[i] = shape
        let count = shape.elementCount
        probes[i] = .int64(Tensor(shape: shape, storage: (0..<count).map { Int64(total + $0) }))
        total += count
    }
    // No float input: the step moves integers (shapes, indices), through which no gradient flows.
    guard total > 0 else { return probes.map { _ in nil } }
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
    return floatShapes.enumerated().map { i, shape in
        guard step.needs(i), let shape else { return nil }
        return Tensor(shape: shape, storage: Array(flat[offsets[i]..<(offsets[i] + shape.elementCount)]))
    }
}

/// The halves of a batch-first tensor: examples, then references.
func halfCount(_ t: Tensor<Float>, _ what: String) throws -> Int {
    guard t.count % 2 == 0, (t.shape.first ?? 0) % 2 == 0 else {
        throw KernelError("\(what) of shape \(t.shape) does not split into example and reference halves")
    }
    return t.count / 2
}
