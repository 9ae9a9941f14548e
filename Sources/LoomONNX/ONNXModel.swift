import LoomTensor
import Synchronization

#if canImport(Glibc)
    import Glibc
#endif

/// An ONNX model compiled for Loom's interpreter: every kernel built, every value given a slot.
///
/// Compilation refuses, at load time, any model Loom cannot run: an unsupported
/// operator, a bad attribute, a value used before it is produced. Running is then
/// a walk over a flat list of steps; values are dropped after their last use.
public final class ONNXModel: Sendable {
    struct Step: Sendable {
        let kernel: any Kernel
        let inputs: [Int?]
        let outputs: [Int]
        /// Slots whose last reader is this step, freed after it runs.
        let frees: [Int]
        let name: String
        let op: String
    }

    /// The parsed file.
    public let file: ModelFile
    /// One step per node: what the reverse pass (deep-lift-shap) and the cost estimate walk.
    let steps: [Step]
    /// The steps ``run(_:)`` executes: ``steps`` with runs of nodes fused into one step where the
    /// result has the same bits (ONNXModel+Fusion.swift; the reverse pass needs the intermediate
    /// values, so it keeps ``steps``).
    let forwardSteps: [Step]
    let slotCount: Int
    let constantSlots: [(Int, Value)]
    let inputSlots: [Int]
    let outputSlots: [Int]
    /// How to compute the X-only part of the graph once per distinct sequence, if it applies (over ``forwardSteps``).
    let sharedPlan: SharedRowPlan?
    /// The same over ``steps``, for the forward pass of deep-lift-shap, whose example half repeats rows.
    let deepLiftPlan: SharedRowPlan?
    /// How a DeepLIFT pass's reverse pass can run over the examples' rows alone: every input's rows
    /// followed through ``steps``; nil unless every step on X's path acts row by row.
    let halfReversePlan: SharedRowPlan?
    /// Batches whose shared run failed a row-wise check and were recomputed the plain way (for diagnostics).
    let sharingFallbacks = Atomic<Int>(0)

    /// Whether runs with repeated X rows try to compute the X-only part of the graph once per distinct row.
    public var sharesRows: Bool { sharedPlan != nil }

    /// How many batches fell back to the plain run because a shared step did not act row by row.
    public var rowSharingFallbacks: Int { sharingFallbacks.load(ordering: .relaxed) }

    /// The model file's path.
    public var path: String { file.path }
    /// The inputs the caller feeds, in order.
    public var inputs: [ModelFile.IOInfo] { file.inputs }
    /// The outputs, in order.
    public var outputs: [ModelFile.IOInfo] { file.outputs }

    /// Loads and compiles a model file.
    public convenience init(path: String) throws {
        try self.init(file: ModelFile(path: path))
    }

    /// Compiles a parsed model.
    public init(file: ModelFile) throws {
        self.file = file
        let path = file.path
        if let bad = file.unsupportedNodes.first {
            let others = Set(file.unsupportedNodes.map(\.opType)).subtracting([bad.opType]).sorted()
            let more = others.isEmpty ? "" : " (also unsupported: \(others.joined(separator: ", ")))"
            let domain = bad.domain.isEmpty || bad.domain == "ai.onnx" ? "" : " from domain '\(bad.domain)'"
            throw ONNXError(
                file: path, kind: .unsupportedOp, node: bad.name, op: bad.opType,
                detail: "operator \(bad.opType)\(domain) is not supported by Loom\(more); `loom inspect \(path)` lists what is")
        }
        // Conv, Gemm and MatMul run on OpenBLAS: a missing library is an error here, not at the first batch.
        try BLAS.load()
        var slots: [String: Int] = [:]
        func slot(_ name: String) -> Int {
            if let s = slots[name] { return s }
            let s = slots.count
            slots[name] = s
            return s
        }
        var constantSlots: [(Int, Value)] = []
        for (name, value) in file.constants.sorted(by: { $0.key < $1.key }) { constantSlots.append((slot(name), value)) }
        let inputSlots = file.inputs.map { slot($0.name) }
        var defined = Set(constantSlots.map(\.0)).union(inputSlots)

        var built: [BuiltStep] = []
        for (i, node) in file.graph.nodes.enumerated() {
            let name = file.nodes[i].name
            if node.opType == "Constant" { continue }
            let attrs = Attributes(node.attributes, opset: file.opset, outputCount: node.outputs.count)
            let kernel: any Kernel
            do { kernel = try OpRegistry.builders[node.opType]!(attrs, file.opset) } catch {
                throw ONNXError(file: path, kind: .invalidModel, node: name, op: node.opType, detail: "\(error)")
            }
            var ins: [Int?] = []
            for input in node.inputs {
                if input.isEmpty { ins.append(nil); continue }
                guard let s = slots[input], defined.contains(s) else {
                    throw ONNXError(
                        file: path, kind: .invalidModel, node: name, op: node.opType,
                        detail: "reads '\(input)' before any node produces it (the graph is not in topological order or is incomplete)")
                }
                ins.append(s)
            }
            let outs = node.outputs.map { slot($0) }
            defined.formUnion(outs)
            built.append((kernel, ins, outs, name, node.opType))
        }
        var outputSlots: [Int] = []
        for o in file.outputs {
            guard let s = slots[o.name], defined.contains(s) else {
                throw ONNXError(file: path, kind: .invalidModel, detail: "graph output '\(o.name)' is never produced")
            }
            outputSlots.append(s)
        }
        guard !outputSlots.isEmpty else { throw ONNXError(file: path, kind: .invalidModel, detail: "the graph has no outputs") }
        // Liveness: free each computed value after its last reader (constants and outputs stay).
        let pinned = Set(constantSlots.map(\.0)).union(outputSlots)
        func withFrees(_ built: [BuiltStep]) -> [Step] {
            var lastUse: [Int: Int] = [:]
            for (i, step) in built.enumerated() { for s in step.inputs.compactMap({ $0 }) { lastUse[s] = i } }
            var frees = [[Int]](repeating: [], count: built.count)
            for (s, i) in lastUse where !pinned.contains(s) { frees[i].append(s) }
            return built.enumerated().map { i, b in Step(kernel: b.kernel, inputs: b.inputs, outputs: b.outputs, frees: frees[i], name: b.name, op: b.op) }
        }
        steps = withFrees(built)
        // Forward steps: runs of nodes that compute one known function become one step (ONNXModel+Fusion.swift).
        let fused = Self.fusedForward(built, pinned: pinned, constants: Dictionary(uniqueKeysWithValues: constantSlots))
        forwardSteps = withFrees(fused)
        slotCount = slots.count
        self.constantSlots = constantSlots
        self.inputSlots = inputSlots
        self.outputSlots = outputSlots
        let constantValues = Dictionary(constantSlots, uniquingKeysWith: { a, _ in a })
        func plan(_ steps: [Step]) -> SharedRowPlan? {
            inputSlots.isEmpty
                ? nil
                : SharedRowPlan(
                    steps: steps, slotCount: slots.count, constants: constantValues,
                    sharedInputs: [inputSlots[0]], otherInputs: Array(inputSlots.dropFirst()), outputs: outputSlots)
        }
        self.sharedPlan = plan(forwardSteps)
        self.deepLiftPlan = plan(steps)
        self.halfReversePlan = Self.halfReversePlan(steps, slotCount: slots.count, constants: constantValues, inputs: inputSlots, outputs: outputSlots)
    }

    /// Runs the graph on float32 inputs (in ``inputs`` order) and returns its outputs as float32.
    public func run(_ feeds: [Tensor<Float>]) throws -> [Tensor<Float>] {
        try checkFeedCount(feeds.count)
        return try execute(feeds, sharedRows: nil)
    }

    /// Runs the graph on a batch whose first input repeats rows.
    ///
    /// - Parameters:
    ///   - shared: the distinct rows of the first input, (D, ...).
    ///   - rows: for each example of the batch, its row of `shared`; the batch size is `rows.count`.
    ///   - others: the other inputs, each with `rows.count` rows.
    ///
    /// The X-only part of the graph runs on the D distinct rows when the model allows it
    /// (see `SharedRowPlan`); the result is that of `run` on the expanded batch.
    public func run(shared: Tensor<Float>, rows: [Int], others: [Tensor<Float>]) throws -> [Tensor<Float>] {
        try checkFeedCount(1 + others.count)
        // Every example with its own row, in order (`--no-share-rows`, or a batch of distinct
        // sequences): sharing saves nothing, so skip its row-wise checks and gathers.
        if rows.count == shared.shape.first, rows.elementsEqual(0..<rows.count) { return try execute([shared] + others, sharedRows: nil) }
        if sharesRows {
            // Whether a batch is computed shared or plain depends on that batch alone, never on
            // batches before it: a shard's bits must not depend on which worker ran what before.
            do { return try execute([shared] + others, sharedRows: rows) } catch let e as NotRowWise {
                sharingFallbacks.add(1, ordering: .relaxed)
                if getenv("LOOM_DEBUG_SHARING") != nil { Console.error("loom: row sharing fell back at \(e.step)\n") }
            }
        }
        return try execute([shared.gatherRows(rows)] + others, sharedRows: nil)
    }

    func checkFeedCount(_ n: Int) throws {
        guard n == inputSlots.count else {
            throw ONNXError(
                file: path, kind: .inputMismatch,
                detail: "the model takes \(inputSlots.count) inputs (\(inputs.map(\.name).joined(separator: ", "))), \(n) were given")
        }
    }

    private func execute(_ feeds: [Tensor<Float>], sharedRows: [Int]?) throws -> [Tensor<Float>] {
        var env = [Value?](repeating: nil, count: slotCount)
        for (s, v) in constantSlots { env[s] = v }
        for (s, t) in zip(inputSlots, feeds) { env[s] = .float(t) }
        let plan = sharedRows == nil ? nil : sharedPlan
        var expanded: [Int: Value] = [:]
        func expand(_ s: Int) throws -> Value {
            if let v = expanded[s] { return v }
            guard let value = env[s], let rows = sharedRows, value.shape.count >= 1 else { throw NotRowWise() }
            let v = value.gatherRows(rows)
            expanded[s] = v
            return v
        }
        let distinct = feeds.first?.shape.first ?? 0
        var inputShapes: [[Int]?] = []
        for (i, step) in forwardSteps.enumerated() {
            var args = step.inputs.map { $0.flatMap { env[$0] } }
            if let plan {
                for s in plan.steps[i].expand {
                    let v = try expand(s)
                    for (k, slot) in step.inputs.enumerated() where slot == s { args[k] = v }
                }
            }
            // Hand over values this step is the last to read, so element-wise kernels can reuse their storage.
            for s in step.frees where expanded[s] == nil {
                var reads = 0
                for input in step.inputs where input == s { reads += 1 }
                if reads == 1 { env[s] = nil }
            }
            // For an error message only: kept in one buffer, not a new array per step.
            inputShapes.removeAll(keepingCapacity: true)
            for a in args { inputShapes.append(a?.shape) }
            var facts: [InputFacts?] = []
            if plan?.steps[i].sharedData == true { facts = args.map { $0.map(InputFacts.init) } }
            let results: [Value]
            do { results = try step.kernel.run(consuming: &args) } catch {
                if plan?.steps[i].shared == true { throw NotRowWise(step: "\(step.op) '\(step.name)': \(error)") }
                throw ONNXError(
                    file: path, kind: .runtime, node: step.name, op: step.op,
                    detail: "\(error) (input shapes \(inputShapes.map { $0.map { "\($0)" } ?? "none" }.joined(separator: ", ")))")
            }
            guard results.count >= step.outputs.count else {
                throw ONNXError(
                    file: path, kind: .runtime, node: step.name, op: step.op,
                    detail: "produced \(results.count) outputs, the graph expects \(step.outputs.count)")
            }
            if let plan, plan.steps[i].sharedData {
                do { try Self.checkRowWise(step, plan: plan.steps[i], inputs: facts, outputs: results, rows: distinct) } catch {
                    throw NotRowWise(step: "\(step.op) '\(step.name)'")
                }
            }
            for (s, v) in zip(step.outputs, results) { env[s] = v }
            for s in step.frees { env[s] = nil; expanded[s] = nil }
        }
        return try outputSlots.map { s in
            let value = plan?.expandOutputs.contains(s) == true ? try expand(s) : env[s]!
            switch value {
            case .float(let t): return t
            case .int64(let t): return Tensor(shape: t.shape, storage: t.storage.map { Float($0) })
            }
        }
    }
}
