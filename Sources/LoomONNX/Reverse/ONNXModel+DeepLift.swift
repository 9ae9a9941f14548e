import LoomTensor

#if canImport(Glibc)
    import Glibc
#endif

/// The result of one DeepLIFT pass over examples stacked with their references.
public struct DeepLiftPass: Sendable {
    /// The attributed output for every row: the examples' first, then the references'.
    public var outputs: [Float]
    /// The multipliers of the attributed output with respect to X, for the example half, (P, A, L).
    public var multipliers: Tensor<Float>
}

extension ONNXModel {
    /// The first node on X's path that has no reverse rule, if any: such models are refused for attributions.
    public var nodeWithoutReverseRule: (name: String, op: String)? {
        let dependent = xDependentSlots()
        for step in steps where step.inputs.contains(where: { $0.map(dependent.contains) ?? false }) {
            if step.kernel.reversible == nil { return (step.name, step.op) }
        }
        return nil
    }

    /// Refuses, naming the operator, a model that DeepLIFT cannot run backwards through, or one without a single output.
    public func checkAttributable(function: String) throws {
        if let bad = nodeWithoutReverseRule {
            throw ONNXError(
                file: path, kind: .unsupportedOp, node: bad.name, op: bad.op,
                detail: "operator \(bad.op) has no reverse (DeepLIFT) rule in Loom, so \(function) cannot run on this model")
        }
        guard outputs.count == 1 else {
            throw ONNXError(
                file: path, kind: .inputMismatch,
                detail:
                    "\(function) attributes a model with one output of shape (batch, outputs), and this one has \(outputs.count) (\(outputs.map(\.name).joined(separator: ", "))); export a model that returns only the output to explain (as bpnet-lite's CountWrapper does)"
            )
        }
    }

    /// Slots whose value depends on the values of the first input (X). A shape does not: what
    /// `Shape(X)` computes (and `ConstantOfShape` of it, an LSTM's zero initial state, say) carries
    /// no gradient.
    func xDependentSlots() -> Set<Int> { Self.xDependentSlots(steps, x: inputSlots.first) }

    static func xDependentSlots(_ steps: [Step], x: Int?) -> Set<Int> {
        var dependent: Set<Int> = x.map { [$0] } ?? []
        for step in steps where step.op != "Shape" && step.inputs.contains(where: { $0.map(dependent.contains) ?? false }) {
            dependent.formUnion(step.outputs)
        }
        return dependent
    }

    /// The bytes one example–reference pair holds during a DeepLIFT pass (its forward values, and as much again for gradients).
    ///
    /// Measured on one pair of the given rows, so it depends only on the model and the
    /// input shapes: every process that runs a job picks the same pass size from it.
    public func deepLiftBytesPerPair(x: Tensor<Float>, others: [Tensor<Float>]) throws -> Int {
        let env = try forwardKeepingValues([x] + others)
        let bytes = steps.reduce(0) { sum, step in sum + step.outputs.reduce(0) { $0 + (env[$1]?.shape.elementCount ?? 0) * 4 } }
        return 2 * bytes / max(1, x.shape[0] / 2)
    }

    /// Runs every step on `feeds` and keeps every value, as the reverse rules read inputs and outputs.
    func forwardKeepingValues(_ feeds: [Tensor<Float>]) throws -> [Value?] {
        try checkFeedCount(feeds.count)
        var env = [Value?](repeating: nil, count: slotCount)
        for (s, v) in constantSlots { env[s] = v }
        for (s, t) in zip(inputSlots, feeds) { env[s] = .float(t) }
        for step in steps {
            let results: [Value]
            do { results = try step.kernel.run(step.inputs.map { $0.flatMap { env[$0] } }) } catch {
                throw ONNXError(file: path, kind: .runtime, node: step.name, op: step.op, detail: "\(error)")
            }
            for (s, v) in zip(step.outputs, results) { env[s] = v }
        }
        return env
    }

    /// ``forwardKeepingValues(_:)`` on a batch whose X repeats rows: the part of the graph that
    /// depends on X alone runs once per distinct row (``deepLiftPlan``). Its values are gathered
    /// to the batch as the reverse pass first reads them, so it reads what the plain run gives,
    /// and values it never reads (inside a module that takes one rule, say) are never gathered.
    ///
    /// - Parameters:
    ///   - shared: the distinct rows of X, (D, ...).
    ///   - rows: for each row of the batch, its row of `shared`.
    ///   - others: the other inputs, `rows.count` rows each.
    func forwardKeepingValues(shared: Tensor<Float>, rows: [Int], others: [Tensor<Float>]) throws -> ForwardValues {
        try checkFeedCount(1 + others.count)
        if let plan = deepLiftPlan, rows.count > shared.shape.first ?? 0 {
            do { return try forwardKeepingValues([shared] + others, plan: plan, rows: rows) } catch let e as NotRowWise {
                sharingFallbacks.add(1, ordering: .relaxed)
                if getenv("LOOM_DEBUG_SHARING") != nil { Console.error("loom: row sharing (deep-lift-shap) fell back at \(e.step)\n") }
            }
        }
        return ForwardValues(try forwardKeepingValues([shared.gatherRows(rows)] + others))
    }

    private func forwardKeepingValues(_ feeds: [Tensor<Float>], plan: SharedRowPlan, rows: [Int]) throws -> ForwardValues {
        var env = [Value?](repeating: nil, count: slotCount)
        for (s, v) in constantSlots { env[s] = v }
        for (s, t) in zip(inputSlots, feeds) { env[s] = .float(t) }
        var expanded: [Int: Value] = [:]
        func expand(_ s: Int) throws -> Value {
            if let v = expanded[s] { return v }
            guard let value = env[s], value.shape.count >= 1 else { throw NotRowWise() }
            let v = value.gatherRows(rows)
            expanded[s] = v
            return v
        }
        let distinct = feeds[0].shape.first ?? 0
        var sharedSlots: Set<Int> = [inputSlots[0]]
        for (i, step) in steps.enumerated() {
            var args = step.inputs.map { $0.flatMap { env[$0] } }
            for s in plan.steps[i].expand {
                let v = try expand(s)
                for (k, slot) in step.inputs.enumerated() where slot == s { args[k] = v }
            }
            let facts = plan.steps[i].sharedData ? args.map { $0.map(InputFacts.init) } : []
            let results: [Value]
            do { results = try step.kernel.run(args) } catch {
                if plan.steps[i].shared { throw NotRowWise(step: "\(step.op) '\(step.name)': \(error)") }
                throw ONNXError(file: path, kind: .runtime, node: step.name, op: step.op, detail: "\(error)")
            }
            if plan.steps[i].sharedData {
                do { try Self.checkRowWise(step, plan: plan.steps[i], inputs: facts, outputs: results, rows: distinct) } catch {
                    throw NotRowWise(step: "\(step.op) '\(step.name)'")
                }
                sharedSlots.formUnion(step.outputs)
            }
            for (s, v) in zip(step.outputs, results) { env[s] = v }
        }
        for (s, v) in expanded { env[s] = v; sharedSlots.remove(s) }
        let values = ForwardValues(env, distinctSlots: sharedSlots, rows: rows)
        // Shapes computed from the distinct rows (Shape(X) and its arithmetic), computed again from the batch.
        for (i, step) in steps.enumerated() where plan.steps[i].shared && !plan.steps[i].sharedData {
            let results = try step.kernel.run(step.inputs.map { $0.flatMap { values[$0] } })
            for (s, v) in zip(step.outputs, results) { values[s] = v }
        }
        return values
    }

    /// Runs the model forward on examples stacked over their references and back with DeepLIFT's rules.
    ///
    /// - Parameters:
    ///   - x: (2P, A, L): P examples, then the P references they pair with.
    ///   - others: the other inputs, 2P rows each (the same rows for both halves).
    ///   - target: the column of the (single) output to attribute.
    /// - Returns: the attributed output of all 2P rows and the multipliers of the P examples,
    ///   the gradient of the sum of all 2P outputs under the rescale rules, as tangermeme takes it.
    public func deepLift(x: Tensor<Float>, others: [Tensor<Float>], target: Int, rules: DeepLiftRules? = nil) throws -> DeepLiftPass {
        try deepLift(env: ForwardValues(forwardKeepingValues([x] + others)), xShape: x.shape, target: target, rules: rules)
    }

    /// ``deepLift(x:others:target:rules:)`` on `shared.gatherRows(rows)`, with the same result:
    /// the X-only part of the forward pass runs once per distinct row of `shared` (the example
    /// half of a pass repeats each example once per shuffle).
    public func deepLift(shared: Tensor<Float>, rows: [Int], others: [Tensor<Float>], target: Int, rules: DeepLiftRules? = nil) throws -> DeepLiftPass {
        try deepLift(shared: shared, rows: rows, others: others, target: target, rules: rules, halfReverse: true)
    }

    /// ``deepLift(shared:rows:others:target:rules:)``, with the reverse pass over the examples'
    /// half where the model allows it (`halfReverse`) or always over the whole batch.
    func deepLift(shared: Tensor<Float>, rows: [Int], others: [Tensor<Float>], target: Int, rules: DeepLiftRules?, halfReverse: Bool) throws -> DeepLiftPass {
        let env = try forwardKeepingValues(shared: shared, rows: rows, others: others)
        return try deepLift(env: env, xShape: [rows.count] + shared.shape.dropFirst(), target: target, rules: rules, halfReverse: halfReverse)
    }

    private func deepLift(env: ForwardValues, xShape: [Int], target: Int, rules: DeepLiftRules?, halfReverse: Bool = true) throws -> DeepLiftPass {
        let rules = try rules ?? DeepLiftRules(model: self)
        let rows = xShape[0]
        guard case .float(let y)? = env[outputSlots[0]] else {
            throw ONNXError(file: path, kind: .runtime, detail: "the output is not float32")
        }
        guard y.rank >= 2, y.shape[0] == rows, Array(y.shape.dropFirst(2)).elementCount == 1 else {
            throw ONNXError(
                file: path, kind: .inputMismatch,
                detail:
                    "deep-lift-shap needs the model to return (batch, outputs), optionally followed by axes of length 1, but it returns \(Array(y.shape.dropFirst())) per example; wrap the model so that it returns one value per output"
            )
        }
        let columns = y.shape[1]
        guard target >= 0 && target < columns else {
            throw ONNXError(
                file: path, kind: .inputMismatch, detail: "--target \(target) is out of range: the model has \(columns) output\(columns == 1 ? "" : "s")")
        }
        let outputs = (0..<rows).map { y.storage[$0 * columns + target] }
        if halfReverse, let plan = halfReversePlan, let start = halfReverseStart(rules), start > 0, rows % 2 == 0 {
            let half = HalfValues(full: env, plan: plan, steps: steps, rows: rows / 2)
            do {
                let m = try reversePass(env: env, half: half, halfBelow: start, y: y, target: target, rules: rules, xShape: xShape)
                return DeepLiftPass(outputs: outputs, multipliers: m)
            } catch let e as NotRowWise {
                sharingFallbacks.add(1, ordering: .relaxed)
                if getenv("LOOM_DEBUG_SHARING") != nil { Console.error("loom: the reverse pass over the examples' half fell back at \(e.step)\n") }
            }
        }
        let m = try reversePass(env: env, half: nil, halfBelow: 0, y: y, target: target, rules: rules, xShape: xShape)
        return DeepLiftPass(outputs: outputs, multipliers: m)
    }

    /// Runs the reverse pass from the attributed output to X and returns the examples' multipliers, (P, ...).
    ///
    /// With `half`, the steps below `halfBelow` run over the examples' rows alone
    /// (ONNXModel+HalfReverse.swift), the gradients cut to those rows as the pass reaches them;
    /// it throws ``NotRowWise`` if a step turns out not to act row by row.
    private func reversePass(
        env: ForwardValues, half: HalfValues?, halfBelow: Int, y: Tensor<Float>, target: Int, rules: DeepLiftRules, xShape: [Int]
    ) throws -> Tensor<Float> {
        let examples = xShape[0] / 2
        // Whether the gradients hold the examples' rows alone yet.
        var halved = half != nil && halfBelow >= steps.count
        let rows = halved ? examples : xShape[0]
        let columns = y.shape[1]
        let dependent = xDependentSlots()
        // Backward from d(sum of y[:, target]) / dy.
        var grads = [Tensor<Float>?](repeating: nil, count: slotCount)
        var seed = Tensor<Float>(shape: [rows] + y.shape.dropFirst(), repeating: 0)
        for r in 0..<rows { seed.storage[r * columns + target] = 1 }
        grads[outputSlots[0]] = seed
        /// Adds a gradient into a slot's (a value read by several nodes sums their gradients, in place).
        func accumulate(_ slot: Int, _ g: Tensor<Float>, into grads: inout [Tensor<Float>?], at step: Step) throws {
            if var existing = grads[slot].take() {
                guard existing.shape == g.shape else {
                    throw ONNXError(
                        file: path, kind: .runtime, node: step.name, op: step.op,
                        detail: "reverse pass: gradient shapes \(existing.shape) and \(g.shape) differ")
                }
                existing.storage.withUnsafeMutableBufferPointer { p in
                    g.storage.withUnsafeBufferPointer { q in for i in 0..<p.count { p[i] += q[i] } }
                }
                grads[slot] = existing
            } else {
                grads[slot] = g
            }
        }
        /// Runs one step backwards: its rule (or plain gradient) from its outputs' gradients into its inputs'.
        ///
        /// Over the examples' half (`half`), a step without a rule runs on its values' first rows, as
        /// does one whose rule reads the references' rows itself (``ReversibleKernel/rulesOnExampleHalf``);
        /// any other rule runs on the whole batch with the examples' gradient in both halves, and
        /// its inputs' gradients are cut back to the first rows.
        func reverse(_ index: Int, useRule: Bool, grads: inout [Tensor<Float>?], needed: (Int) -> Bool, half: HalfValues?) throws {
            let step = steps[index]
            var gradOutputs = step.outputs.map { grads[$0] }
            guard gradOutputs.contains(where: { $0 != nil }) else { return }
            let needs = step.inputs.map { $0.map(needed) ?? false }
            guard needs.contains(true) else { return }
            guard let rule = step.kernel.reversible else {
                throw ONNXError(file: path, kind: .unsupportedOp, node: step.name, op: step.op, detail: "operator \(step.op) has no reverse rule")
            }
            // Over the examples' half, a rule that cannot read the references' rows itself gets the
            // whole batch, the examples' gradient in both halves.
            let paired = half != nil && useRule && !rule.rulesOnExampleHalf
            var reverse: ReverseStep
            if let half, !paired {
                try half.check(index)
                for slot in step.inputs.compactMap({ $0 }) where half.plan.worlds[slot] == .sharedMeta { _ = try half.value(slot) }
                reverse = ReverseStep(examples: half, step: step, gradOutputs: gradOutputs, needs: needs)
            } else {
                try half?.check(index)
                if paired { gradOutputs = gradOutputs.map { $0?.twice() } }
                reverse = ReverseStep(
                    inputs: step.inputs.map { $0.flatMap { env[$0] } }, outputs: step.outputs.map { env[$0]! }, gradOutputs: gradOutputs,
                    needs: needs)
            }
            reverse.useRule = useRule
            let inputGrads: [Tensor<Float>?]
            do { inputGrads = try rule.reverse(reverse) } catch {
                throw ONNXError(file: path, kind: .runtime, node: step.name, op: step.op, detail: "reverse pass: \(error)")
            }
            for (k, slot) in step.inputs.enumerated() {
                guard let slot, needs[k], k < inputGrads.count, let g = inputGrads[k] else { continue }
                try accumulate(slot, paired ? try g.firstRows(examples) : g, into: &grads, at: step)
            }
            // The gradients of this step's outputs are spent.
            for s in step.outputs { grads[s] = nil }
        }
        // Registered modules that exported to several nodes take the rescale rule over the whole module.
        var regionAt: [Int: DeepLiftRules.Region] = [:]
        var inRegion = Set<Int>()
        for region in rules.regions {
            guard let last = region.steps.last(where: { steps[$0].outputs.contains(region.output) }) else { continue }
            regionAt[last] = region
            inRegion.formUnion(region.steps)
        }
        for index in steps.indices.reversed() {
            let half = index < halfBelow ? half : nil
            if half != nil && !halved {
                // Below the lowest rule that sums the halves: the examples' rows from here on.
                for s in grads.indices { grads[s] = try grads[s].map { try $0.firstRows(examples) } }
                halved = true
            }
            if let region = regionAt[index] {
                guard let gOut = grads[region.output] else { continue }
                // The module's nodes run backwards (its plain gradient) over the rows the pass holds.
                let plain = { (local: inout [Tensor<Float>?], needed: (Int) -> Bool) throws in
                    for k in region.steps.reversed() { try reverse(k, useRule: false, grads: &local, needed: needed, half: half) }
                }
                let g: Tensor<Float>
                if let half {
                    for k in region.steps { try half.check(k) }
                    g = try moduleRescale(region, half: half, gOut: gOut, plain: plain)
                } else {
                    g = try moduleRescale(region, env: env, gOut: gOut, plain: plain)
                }
                grads[region.output] = nil
                try accumulate(region.input, g, into: &grads, at: steps[index])
                continue
            }
            if inRegion.contains(index) { continue }
            try reverse(index, useRule: rules.useRule[index], grads: &grads, needed: dependent.contains, half: half)
        }
        let gx = grads[inputSlots[0]] ?? Tensor(shape: [halved ? examples : xShape[0]] + xShape.dropFirst(), repeating: 0)
        return halved ? gx : try gx.firstRows(examples)
    }

    /// tangermeme's `_nonlinear` over a whole module: `g · Δout/Δin` per example/reference pair,
    /// and the module's plain gradient (its nodes run backwards) where `|Δin| < 1e-6`.
    func moduleRescale(
        _ region: DeepLiftRules.Region, env: ForwardValues, gOut: Tensor<Float>,
        plain: (inout [Tensor<Float>?], (Int) -> Bool) throws -> Void
    ) throws -> Tensor<Float> {
        guard case .float(let x)? = env[region.input], case .float(let y)? = env[region.output] else {
            throw ONNXError(file: path, kind: .runtime, detail: "reverse pass: module \(region.name) does not map float32 to float32")
        }
        func plainGradient() throws -> Tensor<Float> { try modulePlainGradient(region, gOut: gOut, shape: x.shape, plain: plain) }
        guard x.shape == y.shape, gOut.shape == y.shape else { return try plainGradient() }
        let n = try halfCount(x, "the input of module \(region.name)")
        let threshold: Float = 1e-6
        // The plain gradient serves only where the input does not change; most passes have no such element.
        let unchanged = x.storage.withUnsafeBufferPointer { px in (0..<n).contains { abs(px[$0] - px[n + $0]) < threshold } }
        let gPlain = unchanged ? try plainGradient() : nil
        return Tensor(shape: x.shape) { out in
            x.storage.withUnsafeBufferPointer { px in
                y.storage.withUnsafeBufferPointer { py in
                    gOut.storage.withUnsafeBufferPointer { pg in
                        guard let gPlain else {
                            // Every element's input changed: the ratio everywhere, in a loop without
                            // branches that the compiler vectorizes (the same operations, the same bits).
                            guard n > 0 else { return }
                            let (x0, x1, y0, y1) = (px.baseAddress!, px.baseAddress! + n, py.baseAddress!, py.baseAddress! + n)
                            let (g0, g1, o0, o1) = (pg.baseAddress!, pg.baseAddress! + n, out.baseAddress!, out.baseAddress! + n)
                            for i in 0..<n {
                                let ratio = (y0[i] - y1[i]) / (x0[i] - x1[i])
                                o0[i] = g0[i] * ratio
                                o1[i] = g1[i] * ratio
                            }
                            return
                        }
                        for i in 0..<n {
                            let dIn = px[i] - px[n + i]
                            if abs(dIn) < threshold {
                                out[i] = gPlain.storage[i]
                                out[n + i] = gPlain.storage[n + i]
                            } else {
                                let ratio = (py[i] - py[n + i]) / dIn
                                out[i] = pg[i] * ratio
                                out[n + i] = pg[n + i] * ratio
                            }
                        }
                    }
                }
            }
        }
    }

    /// ``moduleRescale(_:env:gOut:plain:)`` over the examples' half: `gOut` and the result hold the
    /// examples' rows, each compared with its reference's in place; `plain` runs the module's
    /// nodes backwards over the examples' half.
    func moduleRescale(
        _ region: DeepLiftRules.Region, half: HalfValues, gOut: Tensor<Float>,
        plain: (inout [Tensor<Float>?], (Int) -> Bool) throws -> Void
    ) throws -> Tensor<Float> {
        guard let x = half.full.pairedRows(region.input, half.rows), let y = half.full.pairedRows(region.output, half.rows) else {
            throw NotRowWise(step: "module \(region.name)")
        }
        func plainGradient() throws -> Tensor<Float> { try modulePlainGradient(region, gOut: gOut, shape: x.shape, plain: plain) }
        guard x.shape == y.shape, gOut.shape == y.shape else { return try plainGradient() }
        let threshold: Float = 1e-6
        let size = x.rowSize
        let (xe, xr) = (Array(x.examples), Array(x.references))
        let unchanged = x.tensor.storage.withUnsafeBufferPointer { px in
            (0..<xe.count).contains { r in (0..<size).contains { i in abs(px[xe[r] * size + i] - px[xr[r] * size + i]) < threshold } }
        }
        let gPlain = unchanged ? try plainGradient() : nil
        return x.pairwise(y, gOut) { r, x0, x1, y0, y1, g0, o in
            if let gPlain {
                for i in 0..<size {
                    let dIn = x0[i] - x1[i]
                    o[i] = abs(dIn) < threshold ? gPlain.storage[r * size + i] : g0[i] * ((y0[i] - y1[i]) / dIn)
                }
            } else {
                // The same operations as the whole batch's branch-free loop, so the same bits.
                for i in 0..<size {
                    let ratio = (y0[i] - y1[i]) / (x0[i] - x1[i])
                    o[i] = g0[i] * ratio
                }
            }
        }
    }

    /// The plain gradient through a module's own nodes, run backwards by `plain` from `gOut`.
    private func modulePlainGradient(
        _ region: DeepLiftRules.Region, gOut: Tensor<Float>, shape: [Int], plain: (inout [Tensor<Float>?], (Int) -> Bool) throws -> Void
    ) throws -> Tensor<Float> {
        var local = [Tensor<Float>?](repeating: nil, count: slotCount)
        local[region.output] = gOut
        let produced = Set(region.steps.flatMap { steps[$0].outputs })
        try plain(&local, { $0 == region.input || produced.contains($0) })
        return local[region.input] ?? Tensor(shape: shape, repeating: 0)
    }
}
