import LoomTensor

/// Einsum (opset 12): one or two operands contracted as an equation says, as `torch.einsum` exports (attention written by hand).
///
/// Two operands run as a batched matrix product. Labels in both operands and the output are
/// batch axes; labels in both but not the output are summed (the inner axis); an operand's own
/// output labels are its rows (the first) or columns (the second). `MatMul` does the work, and
/// its reverse rule gives the gradients. A label in one operand alone that the output lacks is
/// summed first. `...` stands for the leading axes an operand has beyond its letters, and
/// broadcasts as numpy broadcasts. An implicit output (no `->`) is the `...` axes, then the
/// letters that appear once, in alphabetical order. A letter repeated within one operand (a
/// diagonal or trace) and more than two operands are refused when the model loads.
struct EinsumKernel: Kernel {
    let inputTerms: [Term]
    let outputTerm: Term?

    /// One side of the equation: its letters, and where `...` stands among them.
    struct Term: Equatable {
        var letters: [Character]
        /// The position of `...` among the letters, if present.
        var ellipsis: Int?
    }

    init(attributes: Attributes) throws {
        let equation = try attributes.string("equation", default: "").filter { $0 != " " }
        guard !equation.isEmpty else { throw KernelError("Einsum needs its 'equation' attribute") }
        let sides = equation.split(separator: "->", omittingEmptySubsequences: false)
        guard sides.count <= 2 else { throw KernelError("equation '\(equation)' has more than one '->'") }
        func term(_ text: Substring) throws -> Term {
            var t = Term(letters: [], ellipsis: nil)
            var rest = text
            while let c = rest.first {
                if rest.hasPrefix("...") {
                    guard t.ellipsis == nil else { throw KernelError("equation '\(equation)': '...' twice in one term") }
                    t.ellipsis = t.letters.count
                    rest = rest.dropFirst(3)
                    continue
                }
                guard c.isASCII, c.isLetter else { throw KernelError("equation '\(equation)': '\(c)' is not a letter") }
                guard !t.letters.contains(c) else {
                    throw KernelError("equation '\(equation)': '\(c)' is repeated in one operand (a diagonal or trace), which Loom does not run")
                }
                t.letters.append(c)
                rest = rest.dropFirst()
            }
            return t
        }
        inputTerms = try sides[0].split(separator: ",", omittingEmptySubsequences: false).map(term)
        outputTerm = sides.count == 2 ? try term(sides[1]) : nil
        guard (1...2).contains(inputTerms.count) else {
            throw KernelError("equation '\(equation)' has \(inputTerms.count) operands; Loom runs Einsum of one or two")
        }
        if let out = outputTerm {
            let given = Set(inputTerms.flatMap(\.letters))
            for c in out.letters where !given.contains(c) { throw KernelError("equation '\(equation)': output letter '\(c)' is in no operand") }
        }
    }

    /// How one run lays its operands out, from their shapes.
    struct Plan {
        struct Operand {
            var shape: [Int]
            /// The shape with 1 at each axis summed before the product.
            var keptShape: [Int]
            /// The extents of the axes kept, in the operand's order.
            var kept: [Int]
            /// The kept axes in product order (batch, then rows or inner, then inner or columns).
            var perm: [Int]
            /// The product's operand shape: batch extents (1 where broadcast or absent), then the two matrix extents.
            var matrixShape: [Int]
        }
        var operands: [Operand]
        /// The product's output shape, batch + [rows, columns] (one operand: the permuted kept shape).
        var productShape: [Int]
        /// The product's output with each batch, row and column label as an axis.
        var labelledShape: [Int]
        /// From the labelled axes to the output's.
        var outputPerm: [Int]
        var outputShape: [Int]
        var multiplyAdds: Double
    }

    /// Each operand's labels and the output's, with `...` spelled out for these shapes.
    func labels(_ shapes: [[Int]]) throws -> (inputs: [[Character]], output: [Character], ellipsis: Int) {
        guard shapes.count == inputTerms.count else { throw KernelError("the equation has \(inputTerms.count) operands, the node \(shapes.count)") }
        // `...` becomes digit labels, numbered from the right so that shorter operands align to the right.
        let ellipsisRanks = try zip(inputTerms, shapes).map { t, s -> Int in
            let r = s.count - t.letters.count
            guard r >= 0, t.ellipsis != nil || r == 0 else {
                throw KernelError("an operand of shape \(s) does not fit its term of \(t.letters.count) letters")
            }
            return r
        }
        let maxEllipsis = ellipsisRanks.max() ?? 0
        let digits = (0..<maxEllipsis).map { Character(Unicode.Scalar(0x30 + UInt8($0))) }
        func expand(_ t: Term, rank: Int) -> [Character] {
            guard let at = t.ellipsis else { return t.letters }
            return Array(t.letters[..<at]) + digits.suffix(rank) + Array(t.letters[at...])
        }
        let labels = zip(inputTerms, ellipsisRanks).map { expand($0, rank: $1) }
        let output: [Character]
        if let out = outputTerm {
            output = expand(out, rank: maxEllipsis)
        } else {
            let counts = Dictionary(labels.flatMap { $0 }.filter(\.isLetter).map { ($0, 1) }, uniquingKeysWith: +)
            output = digits + counts.filter { $0.value == 1 }.keys.sorted()
        }
        return (labels, output, maxEllipsis)
    }

    func plan(_ shapes: [[Int]]) throws -> Plan {
        let (labels, output, _) = try self.labels(shapes)
        // Extents: letters agree exactly; `...` axes broadcast (1 against n).
        var extent: [Character: Int] = [:]
        for (l, s) in zip(labels, shapes) {
            for (c, d) in zip(l, s) {
                if let e = extent[c], e != d {
                    guard c.isNumber, e == 1 || d == 1 else { throw KernelError("label '\(c)' is \(e) in one operand and \(d) in another") }
                    extent[c] = max(e, d)
                } else {
                    extent[c] = d
                }
            }
        }
        let outSet = Set(output)
        if labels.count == 1 {
            let l = labels[0]
            let kept = l.filter { outSet.contains($0) }
            let keptShape = zip(l, shapes[0]).map { outSet.contains($0) ? $1 : 1 }
            let perm = output.map { c in kept.firstIndex(of: c)! }
            let productShape = output.map { extent[$0]! }
            let operand = Plan.Operand(
                shape: shapes[0], keptShape: keptShape, kept: zip(l, shapes[0]).filter { outSet.contains($0.0) }.map(\.1), perm: perm,
                matrixShape: productShape)
            return Plan(
                operands: [operand], productShape: productShape,
                labelledShape: productShape, outputPerm: Array(0..<output.count), outputShape: productShape,
                multiplyAdds: Double(shapes[0].elementCount))
        }
        let (la, lb) = (labels[0], labels[1])
        let (setA, setB) = (Set(la), Set(lb))
        let batch = output.filter { setA.contains($0) && setB.contains($0) }
        let rows = output.filter { setA.contains($0) && !setB.contains($0) }
        let columns = output.filter { setB.contains($0) && !setA.contains($0) }
        let inner = la.filter { setB.contains($0) && !outSet.contains($0) }
        for c in inner where c.isNumber {
            guard shapes[0][la.firstIndex(of: c)!] == shapes[1][lb.firstIndex(of: c)!] else {
                throw KernelError("a summed '...' axis that broadcasts is not supported")
            }
        }
        func product(_ labels: [Character]) -> Int { labels.reduce(1) { $0 * extent[$1]! } }
        let (m, n, k) = (product(rows), product(columns), product(inner))
        func operand(_ l: [Character], _ shape: [Int], _ order: [Character], first: Int, second: Int) -> Plan.Operand {
            let mine = Set(l)
            let keep = Set(batch + rows + columns + inner)
            let kept = l.filter { keep.contains($0) }
            let keptShape = zip(l, shape).map { keep.contains($0) ? $1 : 1 }
            let perm = order.filter { mine.contains($0) }.map { c in kept.firstIndex(of: c)! }
            let batchExtents = batch.map { c in mine.contains(c) ? shape[l.firstIndex(of: c)!] : 1 }
            return .init(
                shape: shape, keptShape: keptShape, kept: zip(l, shape).filter { keep.contains($0.0) }.map(\.1), perm: perm,
                matrixShape: batchExtents + [first, second])
        }
        let a = operand(la, shapes[0], batch + rows + inner, first: m, second: k)
        let b = operand(lb, shapes[1], batch + inner + columns, first: k, second: n)
        let batchOut = batch.map { extent[$0]! }
        let labelled = batch + rows + columns
        return Plan(
            operands: [a, b], productShape: batchOut + [m, n], labelledShape: labelled.map { extent[$0]! },
            outputPerm: output.map { c in labelled.firstIndex(of: c)! }, outputShape: output.map { extent[$0]! },
            multiplyAdds: Double(batchOut.elementCount * m * n * k))
    }

    /// An operand summed over the axes its plan drops, permuted and shaped for the product.
    static func prepare(_ t: Tensor<Float>, _ o: Plan.Operand) throws -> Tensor<Float> {
        let summed = try sumToShape(t, o.keptShape)
        return Tensor(shape: o.perm.map { o.kept[$0] }, storage: permuted(summed.storage, shape: o.kept, perm: o.perm)).reshaped(o.matrixShape)
    }

    func run(_ inputs: [Value?]) throws -> [Value] {
        let operands = try (0..<inputTerms.count).map { try inputs.required($0, "operand \($0)").float("operand \($0)") }
        let plan = try plan(operands.map(\.shape))
        let prepared = try zip(operands, plan.operands).map { try Self.prepare($0, $1) }
        let product: Tensor<Float>
        if prepared.count == 1 {
            product = prepared[0]
        } else {
            product = try MatMulKernel().run([.float(prepared[0]), .float(prepared[1])])[0].float("product").reshaped(plan.productShape)
        }
        let labelled = product.reshaped(plan.labelledShape)
        let out = Tensor(shape: plan.outputShape, storage: permuted(labelled.storage, shape: plan.labelledShape, perm: plan.outputPerm))
        return [.float(out)]
    }
}

extension EinsumKernel: ReversibleKernel {
    /// The plain gradient (tangermeme treats Einsum as linear in each operand, as MatMul).
    func reverse(_ step: ReverseStep) throws -> [Tensor<Float>?] {
        let operands = try (0..<inputTerms.count).map { try step.input($0) }
        let plan = try plan(operands.map(\.shape))
        // The output's gradient, back in the product's layout.
        let g = try step.grad()
        var inverse = [Int](repeating: 0, count: plan.outputPerm.count)
        for (i, p) in plan.outputPerm.enumerated() { inverse[p] = i }
        let gLabelled = Tensor(shape: plan.labelledShape, storage: permuted(g.storage, shape: plan.outputShape, perm: inverse))
        let gProduct = gLabelled.reshaped(plan.productShape)
        let gPrepared: [Tensor<Float>?]
        if operands.count == 1 {
            gPrepared = [gProduct]
        } else {
            let prepared = try zip(operands, plan.operands).map { try Self.prepare($0, $1) }
            gPrepared = try MatMulKernel().reverse(
                ReverseStep(
                    inputs: prepared.map { .float($0) }, outputs: [.float(gProduct)], gradOutputs: [gProduct], needs: [step.needs(0), step.needs(1)]))
        }
        return try zip(gPrepared, plan.operands).enumerated().map { k, pair -> Tensor<Float>? in
            guard step.needs(k), let gp = pair.0 else { return nil }
            let o = pair.1
            var inv = [Int](repeating: 0, count: o.perm.count)
            for (i, p) in o.perm.enumerated() { inv[p] = i }
            let permutedShape = o.perm.map { o.kept[$0] }
            // Broadcast (1-extent) batch axes: the MatMul rule has summed into them already.
            let back = Tensor(shape: o.kept, storage: permuted(gp.reshaped(permutedShape).storage, shape: permutedShape, perm: inv))
            return try broadcastTo(back.reshaped(o.keptShape), o.shape)
        }
    }
}

extension EinsumKernel: CostedKernel {
    func multiplyAdds(inputs: [Value?], outputs: [Value]) -> Double {
        (try? plan(inputs.prefix(inputTerms.count).map { $0?.shape ?? [] }).multiplyAdds) ?? Double(outputs.first?.shape.elementCount ?? 0)
    }
}

extension EinsumKernel: RowWiseKernel {
    var rowInputs: RowInputs { .positions(Set(0..<inputTerms.count)) }

    /// Row-wise when the batch axis is the first label of every shared operand and of the output, and no constant operand has it.
    func checkRows(_ facts: RowFacts) throws {
        let shapes = facts.inputs.prefix(inputTerms.count).map { $0?.shape ?? [] }
        guard let (labels, output, _) = try? labels(Array(shapes)), let batch = output.first else { throw NotRowWise() }
        for (k, l) in labels.enumerated() {
            if facts.constantPositions.contains(k) {
                if l.contains(batch) { throw NotRowWise() }
            } else if l.first != batch {
                throw NotRowWise()
            }
        }
    }
}
