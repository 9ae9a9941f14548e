import LoomTensor

/// Reshape: a new shape from an int64 tensor, with 0 (copy, unless allowzero) and -1 (infer).
struct ReshapeKernel: Kernel {
    let allowZero: Bool
    init(attributes: Attributes) throws { allowZero = try attributes.int("allowzero", default: 0) != 0 }

    func run(_ inputs: [Value?]) throws -> [Value] {
        let data = try inputs.required(0, "data")
        let spec = try inputs.required(1, "shape").int64("shape").storage.map { Int($0) }
        var shape = spec
        var inferred: Int? = nil
        for (i, d) in spec.enumerated() {
            if d == 0 && !allowZero {
                guard i < data.shape.count else { throw KernelError("shape \(spec) copies axis \(i), which \(data.shape) lacks") }
                shape[i] = data.shape[i]
            } else if d == -1 {
                guard inferred == nil else { throw KernelError("shape \(spec) has more than one -1") }
                inferred = i
            } else if d < 0 {
                throw KernelError("shape \(spec) has a negative extent")
            }
        }
        let total = data.shape.elementCount
        guard let known = shape.enumerated().filter({ $0.offset != inferred }).map(\.element).checkedElementCount() else {
            throw KernelError("shape \(spec) is impossibly large")
        }
        if let i = inferred {
            guard known > 0, total % known == 0 else { throw KernelError("cannot reshape \(data.shape) to \(spec)") }
            shape[i] = total / known
        }
        guard shape.elementCount == total else { throw KernelError("cannot reshape \(data.shape) (\(total) elements) to \(spec)") }
        return [data.reshaped(shape)]
    }
}

/// Flatten to 2-D around an axis.
struct FlattenKernel: Kernel {
    let axis: Int
    init(attributes: Attributes) throws { axis = try attributes.int("axis", default: 1) }

    func run(_ inputs: [Value?]) throws -> [Value] {
        let data = try inputs.required(0, "input")
        let rank = data.shape.count
        let a = axis < 0 ? axis + rank : axis
        guard a >= 0 && a <= rank else { throw KernelError("axis \(axis) is out of range for rank \(rank)") }
        return [data.reshaped([Array(data.shape[..<a]).elementCount, Array(data.shape[a...]).elementCount])]
    }
}

/// Shape, optionally sliced by start and end.
struct ShapeKernel: Kernel {
    let start: Int, end: Int?
    init(attributes: Attributes) throws {
        start = try attributes.int("start", default: 0)
        end = attributes.has("end") ? try attributes.int("end") : nil
    }

    func run(_ inputs: [Value?]) throws -> [Value] {
        let shape = try inputs.required(0, "data").shape
        let r = shape.count
        func clamp(_ v: Int) -> Int { min(max(v < 0 ? v + r : v, 0), r) }
        let s = clamp(start), e = clamp(end ?? r)
        let dims = s < e ? Array(shape[s..<e]) : []
        return [.int64(Tensor(shape: [dims.count], storage: dims.map { Int64($0) }))]
    }
}

/// Gather along one axis with int64 indices (negative ones count from the end).
struct GatherKernel: Kernel {
    let axis: Int
    init(attributes: Attributes) throws { axis = try attributes.int("axis", default: 0) }

    /// The gathered axis, the indices made non-negative, and the extents before and after the axis.
    func geometry(_ shape: [Int], _ indices: Tensor<Int64>) throws -> (axis: Int, indices: [Int], outer: Int, inner: Int) {
        let a = try normalizeAxis(axis, rank: shape.count)
        let extent = shape[a]
        let idx = try indices.storage.map { i -> Int in
            let j = i < 0 ? Int(i) + extent : Int(i)
            guard j >= 0 && j < extent else { throw KernelError("index \(i) is out of range for axis \(a) of extent \(extent)") }
            return j
        }
        return (a, idx, Array(shape[..<a]).elementCount, Array(shape[(a + 1)...]).elementCount)
    }

    func run(_ inputs: [Value?]) throws -> [Value] {
        let data = try inputs.required(0, "data")
        let indices = try inputs.required(1, "indices").int64("indices")
        let shape = data.shape
        let (a, idx, outer, inner) = try geometry(shape, indices)
        let extent = shape[a]
        let outShape = Array(shape[..<a]) + indices.shape + Array(shape[(a + 1)...])
        func gather<T>(_ s: [T]) -> [T] {
            var out: [T] = []
            out.reserveCapacity(outer * idx.count * inner)
            for o in 0..<outer { for j in idx { out.append(contentsOf: s[((o * extent + j) * inner)..<((o * extent + j + 1) * inner)]) } }
            return out
        }
        switch data {
        case .float(let t): return [.float(Tensor(shape: outShape, storage: gather(t.storage)))]
        case .int64(let t): return [.int64(Tensor(shape: outShape, storage: gather(t.storage)))]
        }
    }
}

/// Reads the axes of Unsqueeze and Squeeze: an input from opset 13, an attribute before.
private func axesOperand(_ inputs: [Value?], attribute: [Int]?, opset: Int) throws -> [Int]? {
    if opset >= 13, let v = inputs.optional(1) { return try v.int64("axes").storage.map { Int($0) } }
    return attribute
}

/// Unsqueeze: inserts axes of extent 1.
struct UnsqueezeKernel: Kernel {
    let attributeAxes: [Int]?, opset: Int
    init(attributes: Attributes, opset: Int) throws { attributeAxes = try attributes.ints("axes"); self.opset = opset }

    func run(_ inputs: [Value?]) throws -> [Value] {
        let data = try inputs.required(0, "data")
        guard let axes = try axesOperand(inputs, attribute: attributeAxes, opset: opset) else { throw KernelError("axes are missing") }
        let rank = data.shape.count + axes.count
        let normalized = Set(try axes.map { try normalizeAxis($0, rank: rank) })
        guard normalized.count == axes.count else { throw KernelError("axes \(axes) repeat") }
        var shape: [Int] = []
        var it = data.shape.makeIterator()
        for i in 0..<rank { shape.append(normalized.contains(i) ? 1 : it.next()!) }
        return [data.reshaped(shape)]
    }
}

/// Squeeze: removes axes of extent 1 (all of them when no axes are given).
struct SqueezeKernel: Kernel {
    let attributeAxes: [Int]?, opset: Int
    init(attributes: Attributes, opset: Int) throws { attributeAxes = try attributes.ints("axes"); self.opset = opset }

    func run(_ inputs: [Value?]) throws -> [Value] {
        let data = try inputs.required(0, "data")
        let shape = data.shape
        let axes = try axesOperand(inputs, attribute: attributeAxes, opset: opset)
        let drop: Set<Int>
        if let axes {
            drop = Set(try axes.map { try normalizeAxis($0, rank: shape.count) })
            for a in drop where shape[a] != 1 { throw KernelError("cannot squeeze axis \(a) of extent \(shape[a])") }
        } else {
            drop = Set(shape.indices.filter { shape[$0] == 1 })
        }
        return [data.reshaped(shape.indices.filter { !drop.contains($0) }.map { shape[$0] })]
    }
}

/// Concat along one axis.
struct ConcatKernel: Kernel {
    let axis: Int
    init(attributes: Attributes) throws { axis = try attributes.int("axis") }

    func run(_ inputs: [Value?]) throws -> [Value] {
        let values = inputs.compactMap { $0 }
        guard let first = values.first else { throw KernelError("no inputs") }
        let rank = first.shape.count
        let a = try normalizeAxis(axis, rank: rank)
        var outShape = first.shape
        outShape[a] = 0
        for v in values {
            guard v.shape.count == rank else { throw KernelError("inputs have different ranks: \(values.map(\.shape))") }
            for i in 0..<rank where i != a && v.shape[i] != first.shape[i] {
                throw KernelError("inputs \(values.map(\.shape)) differ outside axis \(a)")
            }
            outShape[a] += v.shape[a]
        }
        let outer = Array(first.shape[..<a]).elementCount
        func concat<T>(_ parts: [Tensor<T>]) -> [T] {
            var out: [T] = []
            out.reserveCapacity(outShape.elementCount)
            let chunks = parts.map { Array($0.shape[a...]).elementCount }
            for o in 0..<outer { for (p, c) in zip(parts, chunks) { out.append(contentsOf: p.storage[(o * c)..<((o + 1) * c)]) } }
            return out
        }
        if case .float = first {
            return [.float(Tensor(shape: outShape, storage: concat(try values.map { try $0.float("every input") })))]
        }
        return [.int64(Tensor(shape: outShape, storage: concat(try values.map { try $0.int64("every input") })))]
    }
}

/// Slice with starts, ends, optional axes and steps (opset 10+), clamped as ONNX specifies.
struct SliceKernel: Kernel {
    /// Where a slice starts, its step and its extent along each axis of `shape`.
    struct Geometry {
        var begin: [Int], step: [Int], outShape: [Int]
    }

    /// The geometry that `inputs` (data, starts, ends, axes, steps) ask of a tensor of `shape`.
    func geometry(_ shape: [Int], _ inputs: [Value?]) throws -> Geometry {
        let starts = try inputs.required(1, "starts").int64("starts").storage
        let ends = try inputs.required(2, "ends").int64("ends").storage
        let axes = try inputs.optional(3)?.int64("axes").storage.map { Int($0) } ?? Array(0..<starts.count)
        let steps = try inputs.optional(4)?.int64("steps").storage ?? [Int64](repeating: 1, count: starts.count)
        guard starts.count == ends.count, axes.count == starts.count, steps.count == starts.count else {
            throw KernelError("starts, ends, axes and steps must have the same length")
        }
        guard !shape.isEmpty else { throw KernelError("cannot slice a scalar") }
        var g = Geometry(begin: [Int](repeating: 0, count: shape.count), step: [Int](repeating: 1, count: shape.count), outShape: shape)
        for (i, rawAxis) in axes.enumerated() {
            let a = try normalizeAxis(rawAxis, rank: shape.count)
            let d = shape[a]
            let s = Int(clamping: steps[i])
            guard s != 0 else { throw KernelError("a step of 0") }
            var st = Int(clamping: starts[i]), en = Int(clamping: ends[i])
            if st < 0 { st += d }
            if en < 0 { en += d }
            if s > 0 {
                st = min(max(st, 0), d); en = min(max(en, 0), d)
                g.outShape[a] = max(0, (en - st + s - 1) / s)
            } else {
                st = min(max(st, -1), d - 1); en = min(max(en, -1), d - 1)
                g.outShape[a] = max(0, (st - en + (-s) - 1) / (-s))
            }
            g.begin[a] = st
            g.step[a] = s
        }
        return g
    }

    /// Calls `body(base, begin, step, count)` for each run of the slice along the last axis, in
    /// output order: its elements are `base + begin + j * step` of the source, j < count.
    func forEachRun(_ shape: [Int], _ g: Geometry, _ body: (Int, Int, Int, Int) -> Void) {
        let total = g.outShape.elementCount
        guard total > 0 else { return }
        let strides = shape.rowMajorStrides
        let rank = shape.count, last = rank - 1
        var index = [Int](repeating: 0, count: rank)
        for _ in 0..<(total / g.outShape[last]) {
            var base = 0
            for ax in 0..<last { base += (g.begin[ax] + index[ax] * g.step[ax]) * strides[ax] }
            body(base, g.begin[last], g.step[last], g.outShape[last])
            var ax = last - 1
            while ax >= 0 {
                index[ax] += 1
                if index[ax] < g.outShape[ax] { break }
                index[ax] = 0
                ax -= 1
            }
        }
    }

    func run(_ inputs: [Value?]) throws -> [Value] {
        let data = try inputs.required(0, "data")
        let shape = data.shape
        let g = try geometry(shape, inputs)
        func slice<T>(_ src: [T]) -> [T] {
            var out: [T] = []
            out.reserveCapacity(g.outShape.elementCount)
            forEachRun(shape, g) { base, begin, step, count in
                if step == 1 {
                    out.append(contentsOf: src[(base + begin)..<(base + begin + count)])
                } else {
                    for j in 0..<count { out.append(src[base + begin + j * step]) }
                }
            }
            return out
        }
        switch data {
        case .float(let t): return [.float(Tensor(shape: g.outShape, storage: slice(t.storage)))]
        case .int64(let t): return [.int64(Tensor(shape: g.outShape, storage: slice(t.storage)))]
        }
    }
}

/// Transpose by a permutation (reversed axes by default).
/// The elements of a row-major tensor of `shape`, with its axes reordered: output axis `i` is input axis `perm[i]`.
///
/// Axes of extent 1 are dropped and axes that stay adjacent and in order are merged first, so a
/// transpose is at most a walk over the few axes that really move; the last one is copied in a
/// tight loop (a contiguous run when it stays the input's last axis).
@_specialize(where T == Float)
@_specialize(where T == Int64)
func permuted<T: BitwiseCopyable>(_ src: [T], shape: [Int], perm: [Int]) -> [T] {
    // Drop extent-1 axes, then merge runs of output axes that are consecutive input axes.
    let kept = perm.filter { shape[$0] != 1 }
    var groups: [[Int]] = []
    for axis in kept {
        if let last = groups.last?.last, axis == last + 1 { groups[groups.count - 1].append(axis) } else { groups.append([axis]) }
    }
    guard groups.count > 1 else { return src }
    // The merged input: groups in input order; each output axis is one group.
    let inputOrder = groups.indices.sorted { groups[$0][0] < groups[$1][0] }
    let extent = groups.map { $0.reduce(1) { $0 * shape[$1] } }
    var inStride = [Int](repeating: 0, count: groups.count)
    var stride = 1
    for g in inputOrder.reversed() {
        inStride[g] = stride
        stride *= extent[g]
    }
    let total = shape.elementCount
    let rank = groups.count
    let inner = extent[rank - 1]
    let innerStride = inStride[rank - 1]
    let size = MemoryLayout<T>.stride
    return [T](unsafeUninitializedCapacity: total) { out, done in
        src.withUnsafeBufferPointer { p in
            withUnsafeTemporaryAllocation(of: Int.self, capacity: rank) { index in
                index.initialize(repeating: 0)
                let from = UnsafeRawPointer(p.baseAddress!)
                let to = UnsafeMutableRawPointer(out.baseAddress!)
                var offset = 0
                var o = 0
                while o < total {
                    if innerStride == 1 {
                        copyRun(to + o &* size, from + offset &* size, bytes: inner &* size)
                    } else {
                        let q = p.baseAddress! + offset
                        let d = out.baseAddress! + o
                        for k in 0..<inner { (d + k).initialize(to: q[k &* innerStride]) }
                    }
                    o &+= inner
                    var ax = rank - 2
                    while ax >= 0 {
                        index[ax] &+= 1
                        offset &+= inStride[ax]
                        if index[ax] < extent[ax] { break }
                        offset &-= inStride[ax] &* extent[ax]
                        index[ax] = 0
                        ax &-= 1
                    }
                }
            }
        }
        done = total
    }
}

/// Copies `bytes` bytes 32 at a time: the runs a transpose moves are often 64 bytes, where a
/// call to memmove costs more than the copy.
@inline(__always)
private func copyRun(_ to: UnsafeMutableRawPointer, _ from: UnsafeRawPointer, bytes: Int) {
    var k = 0
    while k &+ 32 <= bytes {
        to.storeBytes(of: from.loadUnaligned(fromByteOffset: k, as: SIMD8<UInt32>.self), toByteOffset: k, as: SIMD8<UInt32>.self)
        k &+= 32
    }
    if k < bytes { (to + k).copyMemory(from: from + k, byteCount: bytes &- k) }
}

struct TransposeKernel: Kernel {
    let perm: [Int]?
    init(attributes: Attributes) throws { perm = try attributes.ints("perm") }

    func run(_ inputs: [Value?]) throws -> [Value] {
        let data = try inputs.required(0, "data")
        let shape = data.shape
        let p = perm ?? Array((0..<shape.count).reversed())
        guard p.count == shape.count, Set(p) == Set(0..<shape.count) else {
            throw KernelError("perm \(p) is not a permutation of the \(shape.count) axes of \(shape)")
        }
        let outShape = p.map { shape[$0] }
        func transpose<T: BitwiseCopyable>(_ src: [T]) -> [T] { permuted(src, shape: shape, perm: p) }
        switch data {
        case .float(let t): return [.float(Tensor(shape: outShape, storage: transpose(t.storage)))]
        case .int64(let t): return [.int64(Tensor(shape: outShape, storage: transpose(t.storage)))]
        }
    }
}
