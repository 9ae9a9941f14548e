import LoomTensor

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

// Comparisons, logic, Where, Min/Max, PRelu and Mod: what exporters write for masks, clamps
// and `nn.Softplus` (the dynamo exporter's Softplus + Greater + Where), for attention and for
// `%` in position arithmetic. Forward, reverse rule, row sharing and cost live in this file.
//
// Booleans are carried as int64 0 and 1 (Loom's values are float32 or int64): a comparison
// yields 0/1, Not/And/Or/Xor and Where read any non-zero as true, and Cast to bool yields 0/1.

/// Greater, Less, Equal, GreaterOrEqual, LessOrEqual, with broadcasting: int64 0 or 1.
struct CompareKernel: Kernel {
    enum Op: String, Sendable, CaseIterable {
        case greater = "Greater", less = "Less", equal = "Equal", greaterOrEqual = "GreaterOrEqual", lessOrEqual = "LessOrEqual"
    }
    let op: Op

    func run(_ inputs: [Value?]) throws -> [Value] {
        let a = try inputs.required(0, "A"), b = try inputs.required(1, "B")
        let shape = try broadcastShape(a.shape, b.shape)
        if case .float(let x) = a, case .float(let y) = b, let direct = compareInPlace(x, y, shape: shape) { return [.int64(direct)] }
        switch (a, b) {
        case (.int64(let x), .int64(let y)):
            return [.int64(try compare(broadcast(x, to: shape), broadcast(y, to: shape)))]
        default:
            return [.int64(try compare(broadcast(floats(a), to: shape), broadcast(floats(b), to: shape)))]
        }
    }

    /// Float operands that need no broadcast copy (each of the result's size, or a single value,
    /// as a threshold is): compared in place. Nil for any other broadcast.
    private func compareInPlace(_ x: Tensor<Float>, _ y: Tensor<Float>, shape: [Int]) -> Tensor<Int64>? {
        let n = shape.elementCount
        guard x.count == n || x.count == 1, y.count == n || y.count == 1 else { return nil }
        let (xStep, yStep) = (x.count == n ? 1 : 0, y.count == n ? 1 : 0)
        func each(_ test: (Float, Float) -> Bool) -> Tensor<Int64> {
            Tensor(shape: shape) { out in
                x.storage.withUnsafeBufferPointer { px in
                    y.storage.withUnsafeBufferPointer { py in
                        for i in 0..<n { out[i] = test(px[i &* xStep], py[i &* yStep]) ? 1 : 0 }
                    }
                }
            }
        }
        switch op {
        case .greater: return each(>)
        case .less: return each(<)
        case .equal: return each(==)
        case .greaterOrEqual: return each(>=)
        case .lessOrEqual: return each(<=)
        }
    }

    private func compare<T: Comparable & Sendable>(_ x: Tensor<T>, _ y: Tensor<T>) -> Tensor<Int64> {
        Tensor(shape: x.shape) { out in
            for i in 0..<out.count {
                let (p, q) = (x.storage[i], y.storage[i])
                let r: Bool =
                    switch op {
                    case .greater: p > q
                    case .less: p < q
                    case .equal: p == q
                    case .greaterOrEqual: p >= q
                    case .lessOrEqual: p <= q
                    }
                out[i] = r ? 1 : 0
            }
        }
    }
}

/// Not, And, Or, Xor on booleans (any non-zero is true), with broadcasting.
struct LogicKernel: Kernel {
    enum Op: String, Sendable, CaseIterable { case not = "Not", and = "And", or = "Or", xor = "Xor" }
    let op: Op

    func run(_ inputs: [Value?]) throws -> [Value] {
        func truth(_ v: Value) -> Tensor<Int64> {
            switch v {
            case .int64(let t): Tensor(shape: t.shape, storage: t.storage.map { $0 != 0 ? 1 : 0 })
            case .float(let t): Tensor(shape: t.shape, storage: t.storage.map { $0 != 0 ? 1 : 0 })
            }
        }
        let a = truth(try inputs.required(0, "A"))
        if op == .not { return [.int64(Tensor(shape: a.shape, storage: a.storage.map { 1 - $0 }))] }
        let b = truth(try inputs.required(1, "B"))
        return [
            .int64(
                try broadcastBinary(a, b) { p, q in
                    switch op {
                    case .and: p & q
                    case .or: p | q
                    case .xor: p ^ q
                    case .not: 0
                    }
                })
        ]
    }
}

/// Where(condition, X, Y): X where the condition holds, else Y, all three broadcast.
struct WhereKernel: Kernel {
    func run(_ inputs: [Value?]) throws -> [Value] {
        let c = try inputs.required(0, "condition"), x = try inputs.required(1, "X"), y = try inputs.required(2, "Y")
        let shape = try broadcastShape(broadcastShape(c.shape, x.shape), y.shape)
        // The mask of a comparison choosing between two float tensors of its shape (the dynamo
        // export's Softplus): one pass, without converting the mask or broadcasting.
        if case .int64(let m) = c, case .float(let p) = x, case .float(let q) = y, m.shape == shape, p.shape == shape, q.shape == shape {
            return [
                .float(
                    Tensor(shape: shape) { out in
                        m.storage.withUnsafeBufferPointer { pm in
                            p.storage.withUnsafeBufferPointer { pp in
                                q.storage.withUnsafeBufferPointer { pq in
                                    for i in 0..<out.count { out[i] = pm[i] != 0 ? pp[i] : pq[i] }
                                }
                            }
                        }
                    })
            ]
        }
        let cond = try broadcast(floats(c), to: shape)
        switch (x, y) {
        case (.int64(let p), .int64(let q)):
            let (bp, bq) = (try broadcast(p, to: shape), try broadcast(q, to: shape))
            return [.int64(Tensor(shape: shape) { out in for i in 0..<out.count { out[i] = cond.storage[i] != 0 ? bp.storage[i] : bq.storage[i] } })]
        default:
            let (bp, bq) = (try broadcast(floats(x), to: shape), try broadcast(floats(y), to: shape))
            return [.float(Tensor(shape: shape) { out in for i in 0..<out.count { out[i] = cond.storage[i] != 0 ? bp.storage[i] : bq.storage[i] } })]
        }
    }
}

/// Min and Max over any number of inputs, with broadcasting.
struct ExtremumKernel: Kernel {
    let isMax: Bool

    func run(_ inputs: [Value?]) throws -> [Value] {
        let present = inputs.compactMap { $0 }
        guard var acc = present.first else { throw KernelError("needs at least one input") }
        for v in present.dropFirst() {
            switch (acc, v) {
            case (.int64(let a), .int64(let b)): acc = .int64(try broadcastBinary(a, b) { isMax ? Swift.max($0, $1) : Swift.min($0, $1) })
            case (.float(let a), .float(let b)): acc = .float(try broadcastBinary(a, b) { isMax ? Swift.max($0, $1) : Swift.min($0, $1) })
            default: throw KernelError("inputs have different types (\(acc.typeName) and \(v.typeName))")
            }
        }
        return [acc]
    }
}

/// PRelu: `x` where x ≥ 0, else `slope · x`, the slope broadcast to x.
struct PReluKernel: Kernel {
    func run(_ inputs: [Value?]) throws -> [Value] {
        let x = try inputs.required(0, "X").float("X"), slope = try inputs.required(1, "slope").float("slope")
        guard try broadcastShape(x.shape, slope.shape) == x.shape else { throw KernelError("slope \(slope.shape) does not broadcast to X \(x.shape)") }
        return [.float(try broadcastBinary(x, slope) { $0 < 0 ? $0 * $1 : $0 })]
    }
}

/// Mod: the remainder with the divisor's sign (fmod = 0, integers only) or the dividend's (fmod = 1, C's fmod).
struct ModKernel: Kernel {
    let fmod: Bool

    init(attributes: Attributes) throws {
        fmod = try attributes.int("fmod", default: 0) != 0
    }

    func run(_ inputs: [Value?]) throws -> [Value] {
        let a = try inputs.required(0, "A"), b = try inputs.required(1, "B")
        switch (a, b) {
        case (.int64(let x), .int64(let y)):
            if y.storage.contains(0) { throw KernelError("integer modulo by zero") }
            return [
                .int64(
                    try broadcastBinary(x, y) { p, q in
                        let r = p % q
                        return !fmod && r != 0 && (r < 0) != (q < 0) ? r + q : r
                    })
            ]
        case (.float(let x), .float(let y)):
            guard fmod else { throw KernelError("Mod of floats needs fmod = 1 (ONNX)") }
            return [.float(try broadcastBinary(x, y) { fmodf($0, $1) })]
        default:
            throw KernelError("inputs have different types (\(a.typeName) and \(b.typeName))")
        }
    }
}

// MARK: - Reverse rules

/// Comparisons and logic have no gradient: nothing flows back through a mask.
extension CompareKernel: ReversibleKernel {
    func reverse(_ step: ReverseStep) throws -> [Tensor<Float>?] { step.noGradients }
}

extension LogicKernel: ReversibleKernel {
    func reverse(_ step: ReverseStep) throws -> [Tensor<Float>?] { step.noGradients }
}

/// The gradient goes to the branch that was taken, summed back to its shape.
extension WhereKernel: ReversibleKernel {
    func reverse(_ step: ReverseStep) throws -> [Tensor<Float>?] {
        let g = try step.grad()
        // The mask as the comparison left it (int64, the gradient's shape), or else as floats broadcast to it.
        let mask: Tensor<Int64>
        guard let condition = step.inputValue(0) else { throw KernelError("the condition is missing") }
        switch condition {
        case .int64(let c) where c.shape == g.shape: mask = c
        case let c: mask = Tensor(shape: g.shape, storage: try broadcast(floats(c), to: g.shape).storage.map { $0 != 0 ? 1 : 0 })
        }
        func branch(_ k: Int, taken: Bool) throws -> Tensor<Float>? {
            guard step.needs(k) else { return nil }
            let masked = Tensor<Float>(shape: g.shape) { out in
                mask.storage.withUnsafeBufferPointer { pm in
                    g.storage.withUnsafeBufferPointer { pg in
                        for i in 0..<out.count { out[i] = (pm[i] != 0) == taken ? pg[i] : 0 }
                    }
                }
            }
            guard let shape = step.inputShape(k) else { throw KernelError("input \(k) is missing") }
            return try sumToShape(masked, shape)
        }
        return [nil, try branch(1, taken: true), try branch(2, taken: false)]
    }
}

/// The gradient goes to the inputs equal to the result, split evenly among ties (as torch's maximum/minimum do).
extension ExtremumKernel: ReversibleKernel {
    func reverse(_ step: ReverseStep) throws -> [Tensor<Float>?] {
        let g = try step.grad(), y = try step.output(0)
        let present = try step.inputs.indices.map { k in try step.inputs[k].map { try broadcast(floats($0), to: y.shape) } }
        var ties = [Float](repeating: 0, count: y.count)
        for case let t? in present { for i in 0..<y.count where t.storage[i] == y.storage[i] { ties[i] += 1 } }
        return try step.inputs.indices.map { k -> Tensor<Float>? in
            guard step.needs(k), let t = present[k], let original = step.inputs[k] else { return nil }
            let share = Tensor<Float>(shape: y.shape) { out in
                for i in 0..<out.count { out[i] = t.storage[i] == y.storage[i] ? g.storage[i] / ties[i] : 0 }
            }
            return try sumToShape(share, original.shape)
        }
    }
}

/// PRelu is a non-linear module in tangermeme 1.6: the rescale rule, with the slope held constant.
extension PReluKernel: ReversibleKernel {
    func reverse(_ step: ReverseStep) throws -> [Tensor<Float>?] {
        guard step.needs(0) else { return [nil, nil] }
        guard let shape = step.inputShape(0) else { throw KernelError("input 0 is missing") }
        let slope = try broadcast(try step.input(1), to: shape)
        let d: (Int, Float, Float) -> Float = { i, xv, _ in xv < 0 ? slope.storage[i] : 1 }
        if step.useRule && step.examplesOnly { return [try rescale(step, what: "the input of PRelu", derivative: d), nil] }
        let x = try step.input(0), y = try step.output(0), g = try step.grad()
        guard step.useRule else { return [Tensor(shape: x.shape) { out in for i in 0..<out.count { out[i] = g.storage[i] * d(i, x.storage[i], 0) } }, nil] }
        return [try rescale(x, y, g, what: "the input of PRelu", derivative: d), nil]
    }

    var rulesOnExampleHalf: Bool { true }
}

/// d(a mod b)/da = 1; d/db = −trunc(a/b) (fmod) or −floor(a/b).
extension ModKernel: ReversibleKernel {
    func reverse(_ step: ReverseStep) throws -> [Tensor<Float>?] {
        let g = try step.grad()
        let ga = step.needs(0) ? try sumToShape(g, try step.input(0).shape) : nil
        var gb: Tensor<Float>? = nil
        if step.needs(1) {
            let a = try broadcast(try step.input(0), to: g.shape), b = try broadcast(try step.input(1), to: g.shape)
            let d = Tensor<Float>(shape: g.shape) { out in
                for i in 0..<out.count {
                    let q = a.storage[i] / b.storage[i]
                    out[i] = -g.storage[i] * (fmod ? q.rounded(.towardZero) : q.rounded(.down))
                }
            }
            gb = try sumToShape(d, try step.input(1).shape)
        }
        return [ga, gb]
    }
}

// MARK: - Row sharing

/// Element-wise with broadcasting: row-wise when no constant operand broadcasts along the batch axis.
protocol BroadcastingRowWiseKernel: RowWiseKernel {}
extension BroadcastingRowWiseKernel {
    var rowInputs: RowInputs { .positions(Set(0..<16)) }
    func checkRows(_ facts: RowFacts) throws { try facts.constantsKeepBatch() }
}

extension CompareKernel: BroadcastingRowWiseKernel {}
extension LogicKernel: BroadcastingRowWiseKernel {}
extension WhereKernel: BroadcastingRowWiseKernel {}
extension ExtremumKernel: BroadcastingRowWiseKernel {}
extension PReluKernel: BroadcastingRowWiseKernel {}
extension ModKernel: BroadcastingRowWiseKernel {}
