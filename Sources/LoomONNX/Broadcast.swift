import LoomTensor

/// numpy-style broadcasting of two shapes.
func broadcastShape(_ a: [Int], _ b: [Int]) throws -> [Int] {
    let rank = max(a.count, b.count)
    var out = [Int](repeating: 1, count: rank)
    for i in 0..<rank {
        let da = i < rank - a.count ? 1 : a[i - (rank - a.count)]
        let db = i < rank - b.count ? 1 : b[i - (rank - b.count)]
        guard da == db || da == 1 || db == 1 else {
            throw KernelError("shapes \(a) and \(b) cannot be broadcast together")
        }
        out[i] = da == 1 ? db : da
    }
    return out
}

/// The strides to read a tensor of `shape` as if it had `target` shape (0 on broadcast axes).
func broadcastStrides(_ shape: [Int], to target: [Int]) -> [Int] {
    let own = shape.rowMajorStrides
    let pad = target.count - shape.count
    return (0..<target.count).map { i in
        i < pad ? 0 : (shape[i - pad] == 1 ? 0 : own[i - pad])
    }
}

/// Visits every entry of a broadcast batch shape in order, with the offsets (in matrices) of
/// the A and B entries it reads, given their `broadcastStrides`.
func forEachBroadcastEntry(_ batch: [Int], strideA: [Int], strideB: [Int], _ body: (_ entry: Int, _ a: Int, _ b: Int) -> Void) {
    var index = [Int](repeating: 0, count: batch.count)
    for i in 0..<batch.elementCount {
        var oa = 0, ob = 0
        for (axis, v) in index.enumerated() { oa += v * strideA[axis]; ob += v * strideB[axis] }
        body(i, oa, ob)
        var axis = batch.count - 1
        while axis >= 0 {
            index[axis] += 1
            if index[axis] < batch[axis] { break }
            index[axis] = 0
            axis -= 1
        }
    }
}

/// Applies `op` element-wise with broadcasting.
@inline(__always)
func broadcastBinary<T: Sendable>(_ a: Tensor<T>, _ b: Tensor<T>, _ op: (T, T) -> T) throws -> Tensor<T> {
    if a.shape == b.shape {
        return Tensor(shape: a.shape) { out in
            a.storage.withUnsafeBufferPointer { pa in
                b.storage.withUnsafeBufferPointer { pb in
                    for i in 0..<out.count { out[i] = op(pa[i], pb[i]) }
                }
            }
        }
    }
    let shape = try broadcastShape(a.shape, b.shape)
    if b.count == 1 {
        let v = b.storage[0]
        return Tensor(shape: shape) { out in
            a.storage.withUnsafeBufferPointer { pa in for i in 0..<out.count { out[i] = op(pa[i], v) } }
        }
    }
    if a.count == 1 {
        let v = a.storage[0]
        return Tensor(shape: shape) { out in
            b.storage.withUnsafeBufferPointer { pb in for i in 0..<out.count { out[i] = op(v, pb[i]) } }
        }
    }
    let sa = broadcastStrides(a.shape, to: shape)
    let sb = broadcastStrides(b.shape, to: shape)
    let rank = shape.count
    let inner = shape[rank - 1]
    let ia = sa[rank - 1], ib = sb[rank - 1]
    return Tensor(shape: shape) { out in
        guard out.count > 0 else { return }
        a.storage.withUnsafeBufferPointer { pa in
            b.storage.withUnsafeBufferPointer { pb in
                forEachBroadcastRow(shape, sa, sb) { r, offA, offB in
                    var ja = offA, jb = offB
                    for o in (r * inner)..<((r + 1) * inner) {
                        out[o] = op(pa[ja], pb[jb])
                        ja += ia; jb += ib
                    }
                }
            }
        }
    }
}

/// A broadcast's shape and operand strides with extent-1 axes dropped and adjacent axes merged
/// where every operand steps through the pair as through one axis (the outer stride is the inner
/// stride times the inner extent, as for a contiguous or a broadcast operand). Each element keeps
/// its operands, so the result is element for element the same.
func coalescedAxes(_ shape: [Int], _ sa: [Int], _ sb: [Int]) -> (shape: [Int], a: [Int], b: [Int]) {
    var s: [Int] = [], a: [Int] = [], b: [Int] = []
    for i in shape.indices where shape[i] != 1 {
        if let last = s.indices.last, a[last] == sa[i] * shape[i], b[last] == sb[i] * shape[i] {
            s[last] *= shape[i]
            a[last] = sa[i]
            b[last] = sb[i]
        } else {
            s.append(shape[i])
            a.append(sa[i])
            b.append(sb[i])
        }
    }
    return s.isEmpty ? ([1], [0], [0]) : (s, a, b)
}

/// Walks the rows (the innermost axis) of a broadcast result of `shape`: calls `body` with each
/// row's number and the offsets where its elements begin in the two operands (strides `sa`, `sb`
/// from ``broadcastStrides(_:to:)``), advancing an odometer over the outer axes.
@inline(__always)
func forEachBroadcastRow(_ shape: [Int], _ sa: [Int], _ sb: [Int], _ body: (_ row: Int, _ offA: Int, _ offB: Int) -> Void) {
    let rank = shape.count
    let inner = rank > 0 ? shape[rank - 1] : 1
    let outer = shape.elementCount / max(inner, 1)
    var index = [Int](repeating: 0, count: rank)
    var offA = 0, offB = 0
    for r in 0..<outer {
        body(r, offA, offB)
        var axis = rank - 2
        while axis >= 0 {
            index[axis] += 1
            offA += sa[axis]; offB += sb[axis]
            if index[axis] < shape[axis] { break }
            offA -= sa[axis] * shape[axis]; offB -= sb[axis] * shape[axis]
            index[axis] = 0
            axis -= 1
        }
    }
}

/// `t` repeated along its broadcast axes to `shape` (numpy's `broadcast_to`, materialized).
func broadcast<T: Sendable>(_ t: Tensor<T>, to shape: [Int]) throws -> Tensor<T> {
    if t.shape == shape { return t }
    guard try broadcastShape(t.shape, shape) == shape else {
        throw KernelError("shape \(t.shape) does not broadcast to \(shape)")
    }
    let strides = broadcastStrides(t.shape, to: shape)
    let rank = shape.count
    return Tensor(shape: shape) { out in
        guard out.count > 0 else { return }
        t.storage.withUnsafeBufferPointer { p in
            var index = [Int](repeating: 0, count: rank)
            var offset = 0
            for o in 0..<out.count {
                out[o] = p[offset]
                var axis = rank - 1
                while axis >= 0 {
                    index[axis] += 1
                    offset += strides[axis]
                    if index[axis] < shape[axis] { break }
                    offset -= strides[axis] * shape[axis]
                    index[axis] = 0
                    axis -= 1
                }
            }
        }
    }
}

/// A value as float32, for kernels that take either type (a bool or int64 condition, say).
func floats(_ v: Value) -> Tensor<Float> {
    switch v {
    case .float(let t): t
    case .int64(let t): Tensor(shape: t.shape, storage: t.storage.map { Float($0) })
    }
}
