import LoomONNX
import LoomTensor
import Synchronization

/// tangermeme's `deep_lift_shap`: DeepLIFT multipliers against shuffled references, projected and averaged.
///
/// For each example and each of its S references, the model runs on the example stacked
/// over the reference and back with DeepLIFT's rules (see `ONNXModel.deepLift`). The
/// multipliers are projected onto the reference (hypothetical contributions), averaged
/// over the references, and multiplied by the sequence unless `hypothetical`.
///
/// References are tangermeme's: reference r of a sequence is its dinucleotide shuffle
/// seeded `seed + r`, which depends on the sequence alone, or row r of the user's
/// references for that sequence of X.
public struct DeepLiftShap: SequenceFunction {
    public let target: Int
    public let shuffles: Int
    public let seed: Int?
    public let references: ReferenceSet?
    public let hypothetical: Bool
    /// Which DeepLIFT rule each node takes (chosen once, when the job loads).
    public let rules: DeepLiftRules?
    /// At most this many example–reference pairs per forward and backward pass (tangermeme's `batch_size`).
    public let pairsPerPass: Int
    /// The memory one pass may hold; passes take fewer pairs when a pair is large (long sequences, wide models).
    public static let passBudgetBytes = 512 << 20
    /// The pass size for this job, fixed on first use (see `passSize`).
    private let chosenPassSize = PassSize()
    /// Convergence deltas above this are reported (tangermeme: 0.001), never an error.
    public let warningThreshold: Float = 0.001

    /// Said when the job loads only where Loom cannot tell which rule tangermeme would apply.
    public var loadNotes: [String] { rules.flatMap { $0.isAmbiguous ? [$0.summary] : nil } ?? [] }

    public init(
        target: Int, shuffles: Int, seed: Int?, references: ReferenceSet?, hypothetical: Bool, pairsPerPass: Int,
        rules: DeepLiftRules? = nil
    ) {
        self.rules = rules
        self.target = target
        self.shuffles = references?.perSequence ?? shuffles
        self.seed = seed
        self.references = references
        self.hypothetical = hypothetical
        self.pairsPerPass = max(1, pairsPerPass)
    }

    /// The references of each distinct sequence of the batch, (D * S, A, L), reference r of row d at d * S + r.
    func referenceRows(_ batch: Batch) throws -> Tensor<Float> {
        let (d, a, l) = (batch.distinctCount, batch.x.shape[1], batch.x.shape[2])
        let s = shuffles
        if let references {
            guard batch.xIndices.count == d else {
                throw FunctionError.invalidOption("--references", "given references apply to X's own sequences, not to perturbed copies")
            }
            return Tensor(shape: [d * s, a, l]) { out in
                for (row, i) in batch.xIndices.enumerated() {
                    for r in 0..<s { references.write(sequence: i, reference: r, into: out.baseAddress! + (row * s + r) * a * l) }
                }
            }
        }
        guard let seed else { throw FunctionError.invalidOption("--random-state", "deep-lift-shap needs a seed for its shuffles") }
        return Tensor(shape: [d * s, a, l]) { out in
            out.initialize(repeating: 0)
            batch.x.storage.withUnsafeBufferPointer { px in
                for row in 0..<d {
                    let codes = DinucleotideShuffle.codes(
                        of: UnsafeBufferPointer(rebasing: px[(row * a * l)..<((row + 1) * a * l)]),
                        alphabetSize: a, length: l)
                    for r in 0..<s {
                        let shuffled = DinucleotideShuffle.shuffles(of: codes, alphabetSize: a, count: 1, seed: seed + r)[0]
                        let dst = out.baseAddress! + (row * s + r) * a * l
                        for (pos, c) in shuffled.enumerated() where Int(c) < a { dst[Int(c) * l + pos] = 1 }
                    }
                }
            }
        }
    }

    public func apply(model: ONNXModel, batch: Batch) throws -> OutputTree {
        let result = try attribute(model: model, batch: batch)
        ConvergenceMonitor.shared.record(pairs: result.pairs, worst: result.worstDelta, relative: result.relativeDelta, threshold: warningThreshold)
        return .leaf(result.values)
    }

    /// A batch's attributions and how well they converged.
    public struct Attribution: Sendable {
        /// (B, A, L).
        public var values: Tensor<Float>
        /// Example–reference pairs computed.
        public var pairs: Int
        /// The largest |Δy − Σ Δx·m| over the pairs.
        public var worstDelta: Float
        /// The mean convergence delta over the mean |Δy| (tangermeme warns above 1 %).
        public var relativeDelta: Float
    }

    /// The batch's attributions (B, A, L), with their convergence.
    public func attribute(model: ONNXModel, batch: Batch) throws -> Attribution {
        let (a, l) = (batch.x.shape[1], batch.x.shape[2])
        let rowSize = a * l
        let s = shuffles
        let refs = try referenceRows(batch)
        let pairs = batch.count * s
        let perPass = try passSize(model: model, batch: batch, refs: refs, rowSize: rowSize)
        var sums = [Float](repeating: 0, count: batch.count * rowSize)
        var worst: Float = 0
        var deltaSum: Float = 0, outputDiffSum: Float = 0
        var first = 0
        while first < pairs {
            let p = min(perPass, pairs - first)
            let range = first..<(first + p)
            // Rows: the P examples, then their P references; the args repeat for both halves.
            // An example repeats once per shuffle, so X's rows are its distinct sequences, then
            // the references (the model runs its X-only part once per distinct row).
            let exampleOf = range.map { $0 / s }
            var sequences: [Int] = [] // rows of batch.x, in order of first use
            var rowOf: [Int: Int] = [:]
            let exampleRows = exampleOf.map { e in
                let d = batch.xRows[e]
                if let k = rowOf[d] { return k }
                rowOf[d] = sequences.count
                sequences.append(d)
                return sequences.count - 1
            }
            let distinct = sequences.count
            let shared = Tensor<Float>(shape: [distinct + p, a, l]) { out in
                batch.x.storage.withUnsafeBufferPointer { px in
                    refs.storage.withUnsafeBufferPointer { pr in
                        for (k, d) in sequences.enumerated() {
                            (out.baseAddress! + k * rowSize).initialize(from: px.baseAddress! + d * rowSize, count: rowSize)
                        }
                        for (i, pair) in range.enumerated() {
                            let r = pair % s, d = batch.xRows[pair / s]
                            (out.baseAddress! + (distinct + i) * rowSize).initialize(from: pr.baseAddress! + (d * s + r) * rowSize, count: rowSize)
                        }
                    }
                }
            }
            let stackedRows = exampleRows + (0..<p).map { distinct + $0 }
            let others = batch.args.map { $0.gatherRows(exampleOf + exampleOf) }
            let pass = try model.deepLift(shared: shared, rows: stackedRows, others: others, target: target, rules: rules)
            shared.storage.withUnsafeBufferPointer { px in
                pass.multipliers.storage.withUnsafeBufferPointer { pm in
                    for i in 0..<p {
                        let xi = px.baseAddress! + exampleRows[i] * rowSize, ri = px.baseAddress! + (distinct + i) * rowSize
                        let mi = pm.baseAddress! + i * rowSize
                        // Convergence: the output difference against the sum of (x - ref) * multipliers.
                        var inputDiff: Float = 0
                        for k in 0..<rowSize { inputDiff += (xi[k] - ri[k]) * mi[k] }
                        let delta = abs((pass.outputs[i] - pass.outputs[p + i]) - inputDiff)
                        worst = max(worst, delta)
                        deltaSum += delta
                        outputDiffSum += abs(pass.outputs[i] - pass.outputs[p + i])
                        // Hypothetical contributions: for each symbol c, sum over symbols of (onehot_c - ref) * m.
                        let e = exampleOf[i]
                        for pos in 0..<l {
                            for c in 0..<a {
                                var v: Float = 0
                                for c2 in 0..<a {
                                    let h: Float = c2 == c ? 1 : 0
                                    v += (h - ri[c2 * l + pos]) * mi[c2 * l + pos]
                                }
                                sums[e * rowSize + c * l + pos] += v
                            }
                        }
                    }
                }
            }
            first += p
        }
        let xb = batch.expandedX
        let scale = 1 / Float(s)
        let out = Tensor<Float>(shape: [batch.count, a, l]) { out in
            xb.storage.withUnsafeBufferPointer { px in
                for i in 0..<out.count {
                    let mean = sums[i] * scale
                    out[i] = hypothetical ? mean : mean * px[i]
                }
            }
        }
        return Attribution(values: out, pairs: pairs, worstDelta: worst, relativeDelta: deltaSum / max(outputDiffSum, 1e-12))
    }
}

extension DeepLiftShap {
    /// How many pairs a pass takes: `pairsPerPass`, fewer if that many would hold more than `passBudgetBytes`.
    ///
    /// The footprint is measured once, on one pair made from the batch's first rows, so it
    /// depends only on the model and the shapes: every worker of a job picks the same size,
    /// and a shard's bits do not depend on where it runs.
    func passSize(model: ONNXModel, batch: Batch, refs: Tensor<Float>, rowSize: Int) throws -> Int {
        if let known = chosenPassSize.value.withLock({ $0 }) { return known }
        let probe = Tensor<Float>(
            shape: [2] + Array(batch.x.shape.dropFirst()),
            storage: Array(batch.x.storage.prefix(rowSize)) + Array(refs.storage.prefix(rowSize)))
        let others = batch.args.map { $0.gatherRows([0, 0]) }
        let perPair = try model.deepLiftBytesPerPair(x: probe, others: others)
        let size = max(1, min(pairsPerPass, DeepLiftShap.passBudgetBytes / max(1, perPair)))
        chosenPassSize.value.withLock { $0 = size }
        return size
    }
}

/// A pass size decided once and shared by copies of a function.
final class PassSize: Sendable {
    let value = Mutex<Int?>(nil)
}

/// Tracks DeepLIFT's convergence deltas across a process and warns, as tangermeme does, when they exceed the threshold.
public final class ConvergenceMonitor: Sendable {
    public static let shared = ConvergenceMonitor()
    private let state = Mutex<(pairs: Int, over: Int, worst: Float)>((0, 0, 0))

    /// Records one batch's worst delta and its mean delta relative to the output differences;
    /// warns when tangermeme does, when the worst exceeds `threshold` (printed for the first three
    /// such batches of a process, counted after that). Tiny deltas are float32 rounding, however
    /// large a share of tiny output differences they are: no warning.
    public func record(pairs: Int, worst: Float, relative: Float, threshold: Float) {
        let message: String? = state.withLock { s in
            s.pairs += pairs
            s.worst = max(s.worst, worst)
            guard worst > threshold else { return nil }
            s.over += 1
            guard s.over <= 3 else { return nil }
            var text =
                "deep-lift-shap convergence deltas up to \(worst) (warning threshold \(threshold)), \(Float(Int(relative * 1000)) / 10)% of the output differences"
            // The usual cause, as in tangermeme: non-linear operations that take their plain gradient.
            if relative > 0.01 {
                text += ": non-linear operations that take their plain gradient (functional calls, see docs/onnx.md) do not conserve the output difference"
            }
            if s.over == 3 { text += "; further batches like this are not reported" }
            return text
        }
        if let message { Console.log(level: "warning", message) }
    }

    /// Pairs attributed, batches over the threshold, and the largest delta seen.
    public var summary: (pairs: Int, batchesOver: Int, worst: Float) {
        state.withLock { ($0.pairs, $0.over, $0.worst) }
    }
}
