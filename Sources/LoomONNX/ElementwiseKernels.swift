import LoomTensor

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// Add, Sub, Mul, Div and Pow, with broadcasting, on float32 or int64.
struct BinaryKernel: Kernel {
    enum Op: Sendable { case add, sub, mul, div, pow }
    let op: Op

    func run(consuming inputs: inout [Value?]) throws -> [Value] {
        guard inputs.count == 2, op != .pow, case .float(let a)? = inputs[0], case .float(let b)? = inputs[1],
            a.shape == b.shape
        else { return try run(inputs) }
        // Equal shapes: the result overwrites the first operand's storage (unique when the interpreter handed it over).
        let bValue = inputs[1].take()!
        let aValue = inputs[0].take()!
        guard case .float(var x) = consume aValue, case .float(let y) = bValue else { preconditionFailure() }
        x.storage.withUnsafeMutableBufferPointer { p in
            y.storage.withUnsafeBufferPointer { q in
                let n = p.count
                switch op {
                case .add: for i in 0..<n { p[i] += q[i] }
                case .sub: for i in 0..<n { p[i] -= q[i] }
                case .mul: for i in 0..<n { p[i] *= q[i] }
                case .div: for i in 0..<n { p[i] /= q[i] }
                case .pow: break
                }
            }
        }
        return [.float(x)]
    }

    func run(_ inputs: [Value?]) throws -> [Value] {
        let a = try inputs.required(0, "A"), b = try inputs.required(1, "B")
        switch (a, b) {
        case (.float(let x), .float(let y)):
            if let fast = sameShapeFloat(x, y) { return [.float(fast)] }
            if op != .pow { return [.float(try broadcastFloat(x, y))] }
            switch op {
            case .add: return [.float(try broadcastBinary(x, y, +))]
            case .sub: return [.float(try broadcastBinary(x, y, -))]
            case .mul: return [.float(try broadcastBinary(x, y, *))]
            case .div: return [.float(try broadcastBinary(x, y, /))]
            case .pow: return [.float(try broadcastBinary(x, y) { powf($0, $1) })]
            }
        case (.int64(let x), .int64(let y)):
            switch op {
            case .add: return [.int64(try broadcastBinary(x, y, &+))]
            case .sub: return [.int64(try broadcastBinary(x, y, &-))]
            case .mul: return [.int64(try broadcastBinary(x, y, &*))]
            case .div:
                if y.storage.contains(0) { throw KernelError("integer division by zero") }
                return [.int64(try broadcastBinary(x, y, /))]
            case .pow:
                return [.int64(try broadcastBinary(x, y) { Int64(pow(Double($0), Double($1))) })]
            }
        case (.float(let x), .int64(let y)) where op == .pow:
            return [.float(try broadcastBinary(x, Tensor(shape: y.shape, storage: y.storage.map { Float($0) })) { powf($0, $1) })]
        default:
            throw KernelError("inputs have different types (\(a.typeName) and \(b.typeName))")
        }
    }
}

extension BinaryKernel {
    /// Broadcasting arithmetic on float32 with the operation chosen outside the loops, so that
    /// each inner loop is a plain, vectorizable one (a closure per element cost a third of a
    /// model's time where a bias or a scale broadcast, as GELU's constants do).
    func broadcastFloat(_ x: Tensor<Float>, _ y: Tensor<Float>) throws -> Tensor<Float> {
        let fullShape = try broadcastShape(x.shape, y.shape)
        // Axes both operands step through as one are merged, so that rows are as long as they can
        // be (a scalar or a contiguous operand makes one row of the whole tensor).
        let (shape, sa, sb) = coalescedAxes(
            fullShape, broadcastStrides(x.shape, to: fullShape), broadcastStrides(y.shape, to: fullShape))
        let rank = shape.count
        let inner = rank > 0 ? shape[rank - 1] : 1
        let ia = rank > 0 ? sa[rank - 1] : 0, ib = rank > 0 ? sb[rank - 1] : 0
        let op = self.op
        @inline(__always)
        func row(_ o: UnsafeMutablePointer<Float>, _ a: UnsafePointer<Float>, _ b: UnsafePointer<Float>) {
            switch (op, ia, ib) {
            case (.add, 1, 1): for k in 0..<inner { o[k] = a[k] + b[k] }
            case (.add, 1, 0): let v = b[0]; for k in 0..<inner { o[k] = a[k] + v }
            case (.add, 0, 1): let v = a[0]; for k in 0..<inner { o[k] = v + b[k] }
            case (.sub, 1, 1): for k in 0..<inner { o[k] = a[k] - b[k] }
            case (.sub, 1, 0): let v = b[0]; for k in 0..<inner { o[k] = a[k] - v }
            case (.sub, 0, 1): let v = a[0]; for k in 0..<inner { o[k] = v - b[k] }
            case (.mul, 1, 1): for k in 0..<inner { o[k] = a[k] * b[k] }
            case (.mul, 1, 0): let v = b[0]; for k in 0..<inner { o[k] = a[k] * v }
            case (.mul, 0, 1): let v = a[0]; for k in 0..<inner { o[k] = v * b[k] }
            case (.div, 1, 1): for k in 0..<inner { o[k] = a[k] / b[k] }
            case (.div, 1, 0): let v = b[0]; for k in 0..<inner { o[k] = a[k] / v }
            case (.div, 0, 1): let v = a[0]; for k in 0..<inner { o[k] = v / b[k] }
            default:
                for k in 0..<inner {
                    let (p, q) = (a[k * ia], b[k * ib])
                    o[k] =
                        switch op {
                        case .add: p + q;
                        case .sub: p - q;
                        case .mul: p * q;
                        case .div: p / q;
                        case .pow: powf(p, q)
                        }
                }
            }
        }
        return Tensor(shape: fullShape) { out in
            guard out.count > 0 else { return }
            x.storage.withUnsafeBufferPointer { pa in
                y.storage.withUnsafeBufferPointer { pb in
                    forEachBroadcastRow(shape, sa, sb) { r, offA, offB in
                        row(out.baseAddress! + r * inner, pa.baseAddress! + offA, pb.baseAddress! + offB)
                    }
                }
            }
        }
    }

    /// The common case of equal shapes (residual adds, say), in loops the compiler vectorizes.
    func sameShapeFloat(_ x: Tensor<Float>, _ y: Tensor<Float>) -> Tensor<Float>? {
        guard x.shape == y.shape, op != .pow else { return nil }
        return Tensor(shape: x.shape) { out in
            x.storage.withUnsafeBufferPointer { a in
                y.storage.withUnsafeBufferPointer { b in
                    let n = out.count
                    switch op {
                    case .add: for i in 0..<n { out[i] = a[i] + b[i] }
                    case .sub: for i in 0..<n { out[i] = a[i] - b[i] }
                    case .mul: for i in 0..<n { out[i] = a[i] * b[i] }
                    case .div: for i in 0..<n { out[i] = a[i] / b[i] }
                    case .pow: break
                    }
                }
            }
        }
    }
}

/// Element-wise functions of one float32 tensor.
struct UnaryKernel: Kernel {
    enum Op: Sendable { case relu, sigmoid, tanh, exp, log, neg, abs, sqrt, softplus }
    let op: Op

    func run(consuming inputs: inout [Value?]) throws -> [Value] {
        guard inputs.count == 1, case .float? = inputs[0] else { return try run(inputs) }
        let value = inputs[0].take()!
        guard case .float(var t) = consume value else { preconditionFailure() }
        // Unique storage (the interpreter's last reader): computed in place, no new buffer.
        t.storage.withUnsafeMutableBufferPointer { p in apply(UnsafeBufferPointer(p), into: p) }
        return [.float(t)]
    }

    func run(_ inputs: [Value?]) throws -> [Value] {
        let v = try inputs.required(0, "X")
        if case .int64(let t) = v {
            switch op {
            case .neg: return [.int64(Tensor(shape: t.shape, storage: t.storage.map { 0 &- $0 }))]
            case .abs: return [.int64(Tensor(shape: t.shape, storage: t.storage.map { Swift.abs($0) }))]
            case .relu: return [.int64(Tensor(shape: t.shape, storage: t.storage.map { Swift.max($0, 0) }))]
            default: throw KernelError("input must be float32, got int64")
            }
        }
        let x = try v.float("X")
        return [
            .float(
                Tensor(shape: x.shape) { out in
                    x.storage.withUnsafeBufferPointer { p in apply(p, into: out) }
                })
        ]
    }

    /// Writes `op` of each element of `p` to `out` (which may be the same memory).
    func apply(_ p: UnsafeBufferPointer<Float>, into out: UnsafeMutableBufferPointer<Float>) {
        let n = out.count
        switch op {
        case .relu: for i in 0..<n { out[i] = p[i] > 0 ? p[i] : 0 }
        case .sigmoid: VectorMath.apply(.sigmoid, p, into: out)
        case .tanh: VectorMath.apply(.tanh, p, into: out)
        case .exp: for i in 0..<n { out[i] = expf(p[i]) }
        case .log: for i in 0..<n { out[i] = logf(p[i]) }
        case .neg: for i in 0..<n { out[i] = -p[i] }
        case .abs: for i in 0..<n { out[i] = Swift.abs(p[i]) }
        case .sqrt: for i in 0..<n { out[i] = sqrtf(p[i]) }
        case .softplus: VectorMath.apply(.softplus, p, into: out)
        }
    }
}

/// Identity (and Dropout at inference): passes its input through.
struct IdentityKernel: Kernel {
    func run(_ inputs: [Value?]) throws -> [Value] { [try inputs.required(0, "input")] }
}

/// Softmax along one axis (opset 13+), or over the flattened trailing axes (before opset 13).
struct SoftmaxKernel: Kernel {
    let axis: Int
    let flattenTrailing: Bool

    init(attributes: Attributes, opset: Int) throws {
        flattenTrailing = opset < 13
        axis = try attributes.int("axis", default: opset < 13 ? 1 : -1)
    }

    func run(_ inputs: [Value?]) throws -> [Value] {
        let x = try inputs.required(0, "input").float("input")
        let a = try normalizeAxis(axis, rank: x.rank)
        let outer = Array(x.shape[..<a]).elementCount
        let length = flattenTrailing ? Array(x.shape[a...]).elementCount : x.shape[a]
        let inner = flattenTrailing ? 1 : Array(x.shape[(a + 1)...]).elementCount
        return [
            .float(
                Tensor(shape: x.shape) { out in
                    x.storage.withUnsafeBufferPointer { p in
                        if inner == 1 && length < 64 {
                            // Short rows (attention over a few positions): the exponentials of every
                            // row in one call, between per-row passes (the same lanes, the same bits).
                            for o in 0..<outer {
                                let row = p.baseAddress! + o * length, dst = out.baseAddress! + o * length
                                let m = VectorMath.maximum(row, length)
                                for k in 0..<length { dst[k] = row[k] - m }
                            }
                            VectorMath.apply(.exp, UnsafeBufferPointer(out), into: out)
                            for o in 0..<outer {
                                let dst = out.baseAddress! + o * length
                                let sum = VectorMath.sum(dst, length)
                                for k in 0..<length { dst[k] /= sum }
                            }
                            return
                        }
                        if inner == 1 {
                            // The last axis: each row's exponentials eight at a time (VectorMath.exp).
                            for o in 0..<outer {
                                let row = p.baseAddress! + o * length
                                let m = VectorMath.maximum(row, length)
                                let dst = UnsafeMutableBufferPointer(rebasing: out[(o * length)..<((o + 1) * length)])
                                for k in 0..<length { dst[k] = row[k] - m }
                                VectorMath.apply(.exp, UnsafeBufferPointer(dst), into: dst)
                                let sum = VectorMath.sum(dst.baseAddress!, length)
                                for k in 0..<length { dst[k] /= sum }
                            }
                            return
                        }
                        for o in 0..<outer {
                            for i in 0..<inner {
                                let base = o * length * inner + i
                                var m = -Float.infinity
                                for k in 0..<length { m = Swift.max(m, p[base + k * inner]) }
                                var sum: Float = 0
                                for k in 0..<length {
                                    let e = expf(p[base + k * inner] - m)
                                    out[base + k * inner] = e
                                    sum += e
                                }
                                for k in 0..<length { out[base + k * inner] /= sum }
                            }
                        }
                    }
                })
        ]
    }
}

/// Converts between float32 and int64 (the two types Loom's values carry); bool is int64 0 or 1.
struct CastKernel: Kernel {
    let toFloat: Bool
    let toBool: Bool

    init(attributes: Attributes) throws {
        let to = try attributes.int("to")
        toBool = to == 9
        switch to {
        case 1, 10, 11: toFloat = true // float, float16, double: all carried as float32
        case 2, 3, 4, 5, 6, 7, 9, 12, 13: toFloat = false
        default: throw KernelError("Cast to data type \(to) is not supported")
        }
    }

    func run(_ inputs: [Value?]) throws -> [Value] {
        let v = try inputs.required(0, "input")
        if toBool {
            switch v {
            case .float(let t): return [.int64(Tensor(shape: t.shape, storage: t.storage.map { $0 != 0 ? 1 : 0 }))]
            case .int64(let t): return [.int64(Tensor(shape: t.shape, storage: t.storage.map { $0 != 0 ? 1 : 0 }))]
            }
        }
        switch (v, toFloat) {
        case (.float(let t), true): return [.float(t)]
        case (.int64(let t), false): return [.int64(t)]
        case (.int64(let t), true): return [.float(Tensor(shape: t.shape, storage: t.storage.map { Float($0) }))]
        case (.float(let t), false):
            return [.int64(Tensor(shape: t.shape, storage: t.storage.map { $0.isFinite ? Int64($0.rounded(.towardZero)) : 0 }))]
        }
    }
}
