import LoomTensor

/// Ops whose output is the input's elements in the same order under another shape.
protocol ReshapingKernel: ReversibleKernel {}

extension ReshapingKernel {
    func reverse(_ step: ReverseStep) throws -> [Tensor<Float>?] {
        var grads = [Tensor<Float>?](repeating: nil, count: step.inputCount)
        if step.needs(0), let shape = step.inputShape(0) { grads[0] = try step.grad().reshaped(shape) }
        return grads
    }
}

extension ReshapeKernel: ReshapingKernel {}
extension FlattenKernel: ReshapingKernel {}
extension UnsqueezeKernel: ReshapingKernel {}
extension SqueezeKernel: ReshapingKernel {}

extension ShapeKernel: ReversibleKernel {
    func reverse(_ step: ReverseStep) throws -> [Tensor<Float>?] { [nil] }
}

extension GatherKernel: ReversibleKernel {
    func reverse(_ step: ReverseStep) throws -> [Tensor<Float>?] { try routeBack(self, step) }
}

extension ConcatKernel: ReversibleKernel {
    /// Each input's slab of the gradient along the axis (float inputs; any other mix takes ``routeBack(_:_:)``).
    func reverse(_ step: ReverseStep) throws -> [Tensor<Float>?] {
        let g = try step.grad()
        let indices = 0..<step.inputCount
        guard indices.allSatisfy(step.inputIsFloat), let rank = step.inputShape(0)?.count, let a = try? normalizeAxis(axis, rank: rank)
        else { return try routeBack(self, step) }
        let shapes = indices.map { step.inputShape($0)! }
        let outer = Array(g.shape[..<a]).elementCount, rowLength = Array(g.shape[a...]).elementCount
        // Each input's run within a row of the gradient, and where it starts.
        let chunks = shapes.map { Array($0[a...]).elementCount }
        let starts = chunks.reduce(into: [0]) { $0.append($0.last! + $1) }
        return shapes.enumerated().map { k, shape in
            guard step.needs(k) else { return nil }
            let (chunk, start) = (chunks[k], starts[k])
            return Tensor(shape: shape) { out in
                g.storage.withUnsafeBufferPointer { pg in
                    for o in 0..<outer {
                        (out.baseAddress! + o * chunk).initialize(from: pg.baseAddress! + o * rowLength + start, count: chunk)
                    }
                }
            }
        }
    }
}

extension SliceKernel: ReversibleKernel {
    func reverse(_ step: ReverseStep) throws -> [Tensor<Float>?] { try routeBack(self, step) }
}

extension TransposeKernel: ReversibleKernel {
    /// The gradient transposed back by the inverse permutation: each element moves once, so the
    /// values are those of ``routeBack(_:_:)`` (which adds each to +0: a −0 comes back +0 there),
    /// without its position probes.
    func reverse(_ step: ReverseStep) throws -> [Tensor<Float>?] {
        guard step.needs(0) else { return [nil] }
        let x = try step.input(0), g = try step.grad()
        let p = perm ?? Array((0..<x.rank).reversed())
        guard p.count == x.rank, Set(p) == Set(0..<x.rank), g.shape == p.map({ x.shape[$0] }) else { return try routeBack(self, step) }
        var inverse = [Int](repeating: 0, count: p.count)
        for (k, axis) in p.enumerated() { inverse[axis] = k }
        return [Tensor(shape: x.shape, storage: permuted(g.storage, shape: g.shape, perm: inverse))]
    }
}

extension ReduceKernel: ReversibleKernel {
    /// Each input element gets its reduced output's gradient (divided by the count for a mean).
    func reverse(_ step: ReverseStep) throws -> [Tensor<Float>?] {
        guard step.needs(0) else { return [nil, nil] }
        guard let xShape = step.inputShape(0) else { throw KernelError("input 0 is missing") }
        let g = try step.grad()
        var axes = attributeAxes ?? []
        if let a = step.inputValue(1) { axes = try a.int64("axes").storage.map { Int($0) } }
        if axes.isEmpty {
            if noopWithEmptyAxes { return [g, nil] }
            axes = Array(0..<xShape.count)
        }
        let reduced = Set(try axes.map { try normalizeAxis($0, rank: xShape.count) })
        let keptShape = xShape.enumerated().map { reduced.contains($0.offset) ? 1 : $0.element }
        var spread = try broadcastTo(g.reshaped(keptShape), xShape)
        if mean {
            let divisor = Float(xShape.elementCount / max(keptShape.elementCount, 1))
            spread = Tensor(shape: spread.shape, storage: spread.storage.map { $0 / divisor })
        }
        return [spread, nil]
    }
}
