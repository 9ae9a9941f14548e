import LoomTensor

// Pad, Expand, Tile and Split: kernels that only move elements. Each output element comes
// from one input element (or from a constant, for Pad), so one index map serves the forward
// pass (gather) and the reverse pass (scatter-add of the gradient). Forward, reverse rule,
// row sharing and cost live in this file.

/// For each output element, the input element it copies (−1: none, a padding constant).
struct IndexMap {
    let outputShape: [Int]
    let source: [Int]

    /// Builds the map by walking the output's indices; `sourceOf` maps an output index to an input offset or −1.
    init(outputShape: [Int], sourceOf: ([Int]) -> Int) throws {
        self.outputShape = outputShape
        let count = outputShape.elementCount
        guard count <= 1 << 31 else { throw KernelError("output of \(count) elements is too large") }
        var source = [Int](repeating: -1, count: count)
        var index = [Int](repeating: 0, count: outputShape.count)
        for o in 0..<count {
            source[o] = sourceOf(index)
            var axis = outputShape.count - 1
            while axis >= 0 {
                index[axis] += 1
                if index[axis] < outputShape[axis] { break }
                index[axis] = 0
                axis -= 1
            }
        }
        self.source = source
    }

    func gather<T: Sendable>(_ x: Tensor<T>, fill: T) -> Tensor<T> {
        Tensor(shape: outputShape) { out in
            x.storage.withUnsafeBufferPointer { p in
                for o in 0..<out.count { out[o] = source[o] >= 0 ? p[source[o]] : fill }
            }
        }
    }

    func gather(_ v: Value, fill: Float) -> Value {
        switch v {
        case .float(let t): .float(gather(t, fill: fill))
        case .int64(let t): .int64(gather(t, fill: Int64(fill)))
        }
    }

    /// The gradient of the input: each output's gradient added to the element it came from.
    func scatterAdd(_ g: Tensor<Float>, inputShape: [Int]) -> Tensor<Float> {
        var out = [Float](repeating: 0, count: inputShape.elementCount)
        g.storage.withUnsafeBufferPointer { p in
            for o in 0..<p.count where source[o] >= 0 { out[source[o]] += p[o] }
        }
        return Tensor(shape: inputShape, storage: out)
    }
}

/// Pad: constant, reflect or edge padding; the pads (and, from opset 18, the axes) as inputs
/// from opset 11, as an attribute before. Negative pads crop.
struct PadKernel: Kernel {
    enum Mode: String, Sendable { case constant, reflect, edge }
    let mode: Mode
    let attributePads: [Int]?
    let attributeValue: Float

    init(attributes a: Attributes) throws {
        let m = try a.string("mode", default: "constant")
        guard let mode = Mode(rawValue: m) else { throw KernelError("Pad mode '\(m)' is not supported (constant, reflect, edge)") }
        self.mode = mode
        attributePads = a.opset < 11 ? try a.ints("pads") ?? a.ints("paddings") : nil
        attributeValue = try a.float("value", default: 0)
    }

    /// The begin and end pads per axis of a tensor of `rank`.
    func pads(_ inputs: [Value?], rank: Int) throws -> (begin: [Int], end: [Int], value: Float) {
        let raw: [Int]
        if let attributePads { raw = attributePads } else { raw = try inputs.required(1, "pads").int64("pads").storage.map { Int($0) } }
        var value = attributeValue
        if attributePads == nil, let v = inputs.optional(2) {
            let t = floats(v)
            guard t.count == 1 else { throw KernelError("constant_value must be a scalar, got shape \(t.shape)") }
            value = t.storage[0]
        }
        let axes = try inputs.optional(3).map { try $0.int64("axes").storage.map { try normalizeAxis(Int($0), rank: rank) } } ?? Array(0..<rank)
        guard raw.count == 2 * axes.count else { throw KernelError("pads has \(raw.count) entries for \(axes.count) axes") }
        var begin = [Int](repeating: 0, count: rank), end = [Int](repeating: 0, count: rank)
        for (k, a) in axes.enumerated() { begin[a] = raw[k]; end[a] = raw[axes.count + k] }
        return (begin, end, value)
    }

    func map(_ shape: [Int], begin: [Int], end: [Int]) throws -> IndexMap {
        var outShape = shape
        for a in shape.indices {
            outShape[a] = shape[a] + begin[a] + end[a]
            guard outShape[a] >= 0 else { throw KernelError("pads \(begin[a]), \(end[a]) crop axis \(a) of extent \(shape[a]) below zero") }
            if mode == .reflect && (begin[a] >= shape[a] || end[a] >= shape[a]) && (begin[a] > 0 || end[a] > 0) {
                throw KernelError("reflect pads must be shorter than the axis (axis \(a) of extent \(shape[a]))")
            }
            if mode == .edge && shape[a] == 0 && (begin[a] > 0 || end[a] > 0) { throw KernelError("edge padding of an empty axis") }
        }
        let strides = shape.rowMajorStrides
        return try IndexMap(outputShape: outShape) { index in
            var offset = 0
            for a in index.indices {
                var i = index[a] - begin[a]
                let n = shape[a]
                if i < 0 || i >= n {
                    switch mode {
                    case .constant: return -1
                    case .edge: i = min(max(i, 0), n - 1)
                    case .reflect: i = i < 0 ? -i : 2 * (n - 1) - i
                    }
                }
                offset += i * strides[a]
            }
            return offset
        }
    }

    func run(_ inputs: [Value?]) throws -> [Value] {
        let x = try inputs.required(0, "data")
        let (begin, end, value) = try pads(inputs, rank: x.shape.count)
        return [try map(x.shape, begin: begin, end: end).gather(x, fill: value)]
    }
}

/// Expand: broadcasts the input to a shape (numpy rules, both ways).
struct ExpandKernel: Kernel {
    func run(_ inputs: [Value?]) throws -> [Value] {
        let x = try inputs.required(0, "input")
        let target = try inputs.required(1, "shape").int64("shape").storage.map { Int($0) }
        guard target.allSatisfy({ $0 >= 0 }) else { throw KernelError("shape \(target) has a negative extent") }
        let shape = try broadcastShape(x.shape, target)
        guard shape.checkedElementCount() != nil else { throw KernelError("expanding \(x.shape) to \(target) is impossibly large") }
        switch x {
        case .float(let t): return [.float(try broadcast(t, to: shape))]
        case .int64(let t): return [.int64(try broadcast(t, to: shape))]
        }
    }
}

/// Tile: repeats the input along each axis.
struct TileKernel: Kernel {
    func map(_ shape: [Int], repeats: [Int]) throws -> IndexMap {
        guard repeats.count == shape.count, repeats.allSatisfy({ $0 >= 0 }) else {
            throw KernelError("repeats \(repeats) must have one non-negative entry per axis of \(shape)")
        }
        let strides = shape.rowMajorStrides
        let (outShape, overflow) = zip(shape, repeats).reduce(([Int](), false)) { acc, p in
            let (v, o) = p.0.multipliedReportingOverflow(by: p.1)
            return (acc.0 + [v], acc.1 || o)
        }
        guard !overflow, outShape.checkedElementCount() != nil else { throw KernelError("repeats \(repeats) make \(shape) impossibly large") }
        return try IndexMap(outputShape: outShape) { index in
            var offset = 0
            for a in index.indices { offset += (index[a] % shape[a]) * strides[a] }
            return offset
        }
    }

    func run(_ inputs: [Value?]) throws -> [Value] {
        let x = try inputs.required(0, "input")
        let repeats = try inputs.required(1, "repeats").int64("repeats").storage.map { Int($0) }
        return [try map(x.shape, repeats: repeats).gather(x, fill: 0)]
    }
}

/// Split: consecutive slices along an axis, sized by the `split` input (opset 13+) or
/// attribute, or equal (`num_outputs` from opset 18, else the node's output count).
struct SplitKernel: Kernel {
    let axis: Int
    let attributeSplit: [Int]?
    let numOutputs: Int?
    let outputCount: Int

    init(attributes a: Attributes) throws {
        axis = try a.int("axis", default: 0)
        attributeSplit = a.opset < 13 ? try a.ints("split") : nil
        numOutputs = a.has("num_outputs") ? try a.int("num_outputs") : nil
        outputCount = a.outputCount
    }

    func sizes(_ inputs: [Value?], extent: Int) throws -> [Int] {
        if let s = try attributeSplit ?? inputs.optional(1)?.int64("split").storage.map({ Int($0) }) {
            guard s.allSatisfy({ $0 >= 0 }), s.reduce(0, +) == extent else { throw KernelError("split \(s) does not add up to \(extent)") }
            return s
        }
        let n = numOutputs ?? outputCount
        guard n >= 1 else { throw KernelError("Split needs split sizes, num_outputs or outputs") }
        let chunk = (extent + n - 1) / n
        return (0..<n).map { k in max(0, min(chunk, extent - k * chunk)) }
    }

    func run(_ inputs: [Value?]) throws -> [Value] {
        let x = try inputs.required(0, "input")
        let a = try normalizeAxis(axis, rank: x.shape.count)
        var begin = 0
        return try sizes(inputs, extent: x.shape[a]).map { size in
            defer { begin += size }
            return try slice(x, axis: a, from: begin, count: size)
        }
    }

    /// `count` elements from `from` along `axis`.
    func slice(_ v: Value, axis a: Int, from: Int, count: Int) throws -> Value {
        let shape = v.shape
        let strides = shape.rowMajorStrides
        var outShape = shape
        outShape[a] = count
        let map = try IndexMap(outputShape: outShape) { index in
            var offset = 0
            for k in index.indices { offset += (k == a ? index[k] + from : index[k]) * strides[k] }
            return offset
        }
        return map.gather(v, fill: 0)
    }
}

// MARK: - Reverse rules

extension PadKernel: ReversibleKernel {
    func reverse(_ step: ReverseStep) throws -> [Tensor<Float>?] {
        guard step.needs(0) else { return step.noGradients }
        let x = try step.input(0)
        let (begin, end, _) = try pads(step.inputs, rank: x.rank)
        return [try map(x.shape, begin: begin, end: end).scatterAdd(try step.grad(), inputShape: x.shape)] + step.noGradients.dropFirst()
    }
}

extension ExpandKernel: ReversibleKernel {
    func reverse(_ step: ReverseStep) throws -> [Tensor<Float>?] {
        [step.needs(0) ? try sumToShape(try step.grad(), try step.input(0).shape) : nil, nil]
    }
}

extension TileKernel: ReversibleKernel {
    func reverse(_ step: ReverseStep) throws -> [Tensor<Float>?] {
        guard step.needs(0) else { return [nil, nil] }
        let x = try step.input(0)
        let repeats = try step.inputs.required(1, "repeats").int64("repeats").storage.map { Int($0) }
        return [try map(x.shape, repeats: repeats).scatterAdd(try step.grad(), inputShape: x.shape), nil]
    }
}

/// The gradients of the parts, side by side again (zero where none flows).
extension SplitKernel: ReversibleKernel {
    func reverse(_ step: ReverseStep) throws -> [Tensor<Float>?] {
        guard step.needs(0) else { return step.noGradients }
        let x = try step.input(0)
        let a = try normalizeAxis(axis, rank: x.rank)
        let strides = x.shape.rowMajorStrides
        var out = [Float](repeating: 0, count: x.count)
        var begin = 0
        for (k, size) in try sizes(step.inputs, extent: x.shape[a]).enumerated() {
            defer { begin += size }
            guard k < step.gradOutputs.count, let g = step.gradOutputs[k] else { continue }
            var part = x.shape
            part[a] = size
            let map = try IndexMap(outputShape: part) { index in
                var offset = 0
                for j in index.indices { offset += (j == a ? index[j] + begin : index[j]) * strides[j] }
                return offset
            }
            for o in 0..<g.count { out[map.source[o]] += g.storage[o] }
        }
        return [Tensor(shape: x.shape, storage: out)] + step.noGradients.dropFirst()
    }
}

// MARK: - Row sharing

/// Row-wise when nothing is padded along the batch axis.
extension PadKernel: RowWiseKernel {
    var rowInputs: RowInputs { .positions([0]) }
    func checkRows(_ facts: RowFacts) throws {
        let rank = facts.rank
        if let p = attributePads ?? facts.ints(1), facts.ints(3) == nil {
            guard p.count == 2 * rank, p[0] == 0, p[rank] == 0 else { throw NotRowWise() }
        } else if let axes = facts.ints(3) {
            guard axes.allSatisfy({ facts.keepsBatch($0, rank: rank) }) else { throw NotRowWise() }
        } else {
            throw NotRowWise()
        }
    }
}

/// Row-wise when the target keeps the rows (checked on the output for every step on shared rows).
extension ExpandKernel: RowWiseKernel {
    var rowInputs: RowInputs { .positions([0], shapes: [1]) }
    func checkRows(_ facts: RowFacts) throws {}
}

extension TileKernel: RowWiseKernel {
    var rowInputs: RowInputs { .positions([0]) }
    func checkRows(_ facts: RowFacts) throws {
        guard facts.ints(1)?.first == 1 else { throw NotRowWise() }
    }
}

extension SplitKernel: RowWiseKernel {
    var rowInputs: RowInputs { .positions([0]) }
    func checkRows(_ facts: RowFacts) throws {
        guard facts.keepsBatch(axis, rank: facts.rank) else { throw NotRowWise() }
    }
}

/// ConstantOfShape: a tensor of the given shape filled with one value (float32 0 by default),
/// as the classic exporter writes the zero initial states of an LSTM and broadcast targets.
struct ConstantOfShapeKernel: Kernel {
    let fill: Value

    init(attributes a: Attributes) throws {
        switch a.values["value"] {
        case nil: fill = .float(Tensor(shape: [1], storage: [0]))
        case .tensor(let t)?:
            var decoder = TensorDecoder(file: "ConstantOfShape")
            let v = try decoder.decode(t)
            guard v.shape.elementCount == 1 else { throw KernelError("value must hold one element, got shape \(v.shape)") }
            fill = v
        default: throw KernelError("attribute 'value' must be a one-element tensor")
        }
    }

    func run(_ inputs: [Value?]) throws -> [Value] {
        let shape = try inputs.required(0, "input").int64("input").storage.map { Int($0) }
        guard shape.allSatisfy({ $0 >= 0 }) else { throw KernelError("shape \(shape) has a negative extent") }
        var count = 1
        for d in shape {
            let (v, o) = count.multipliedReportingOverflow(by: d)
            guard !o, v <= 1 << 31 else { throw KernelError("shape \(shape) is too large") }
            count = v
        }
        switch fill {
        case .float(let t): return [.float(Tensor(shape: shape, repeating: t.storage[0]))]
        case .int64(let t): return [.int64(Tensor(shape: shape, repeating: t.storage[0]))]
        }
    }
}

/// Its value does not depend on any input's values: no gradient.
extension ConstantOfShapeKernel: ReversibleKernel {
    func reverse(_ step: ReverseStep) throws -> [Tensor<Float>?] { [nil] }
}
