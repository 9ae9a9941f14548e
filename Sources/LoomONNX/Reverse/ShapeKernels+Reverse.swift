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
    /// Each gathered slab's gradient added back to the slab it came from, in output order (the
    /// adds of ``routeBack(_:_:)``, without its position probes).
    func reverse(_ step: ReverseStep) throws -> [Tensor<Float>?] {
        guard step.needs(0), step.inputIsFloat(0), let shape = step.inputShape(0), case .int64(let indices)? = step.inputValue(1) else {
            return try routeBack(self, step)
        }
        let (a, idx, outer, inner) = try geometry(shape, indices)
        let extent = shape[a], g = try step.grad()
        guard g.count == outer * idx.count * inner else { throw KernelError("gradient of \(g.shape) for a gather from \(shape)") }
        var out = [Float](repeating: 0, count: shape.elementCount)
        out.withUnsafeMutableBufferPointer { po in
            g.storage.withUnsafeBufferPointer { pg in
                var k = 0
                for o in 0..<outer {
                    for j in idx {
                        let dst = po.baseAddress! + (o * extent + j) * inner
                        for i in 0..<inner { dst[i] += pg[k + i] }
                        k += inner
                    }
                }
            }
        }
        return [Tensor(shape: shape, storage: out), nil]
    }
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
    /// The gradient added back where each sliced element came from, in output order (the adds of
    /// ``routeBack(_:_:)``, a −0 included, without its position probes).
    func reverse(_ step: ReverseStep) throws -> [Tensor<Float>?] {
        guard step.needs(0), step.inputIsFloat(0), let shape = step.inputShape(0) else { return try routeBack(self, step) }
        let geometry = try geometry(shape, [nil] + (1..<step.inputCount).map(step.inputValue))
        let g = try step.grad()
        guard g.count == geometry.outShape.elementCount else { throw KernelError("gradient of \(g.shape) for a slice of \(geometry.outShape)") }
        var out = [Float](repeating: 0, count: shape.elementCount)
        out.withUnsafeMutableBufferPointer { po in
            g.storage.withUnsafeBufferPointer { pg in
                var k = 0
                forEachRun(shape, geometry) { base, begin, stride, count in
                    for j in 0..<count { po[base + begin + j * stride] += pg[k + j] }
                    k += count
                }
            }
        }
        var grads = step.noGradients
        grads[0] = Tensor(shape: shape, storage: out)
        return grads
    }
}

extension TransposeKernel: ReversibleKernel {
    /// The gradient transposed back by the inverse permutation: each element moves once, so the
    /// values are those of ``routeBack(_:_:)`` (which adds each to +0: a −0 comes back +0 there),
    /// without its position probes.
    func reverse(_ step: ReverseStep) throws -> [Tensor<Float>?] {
        guard step.needs(0) else { return [nil] }
        guard let shape = step.inputShape(0) else { return try routeBack(self, step) }
        let g = try step.grad()
        let p = perm ?? Array((0..<shape.count).reversed())
        guard p.count == shape.count, Set(p) == Set(0..<shape.count), g.shape == p.map({ shape[$0] }) else { return try routeBack(self, step) }
        var inverse = [Int](repeating: 0, count: p.count)
        for (k, axis) in p.enumerated() { inverse[axis] = k }
        return [Tensor(shape: shape, storage: permuted(g.storage, shape: g.shape, perm: inverse))]
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
