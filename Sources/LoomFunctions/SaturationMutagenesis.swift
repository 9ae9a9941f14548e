import LoomONNX
import LoomTensor

/// tangermeme's `saturation_mutagenesis`: every single-base substitution in a region, scored.
///
/// For each example and each (symbol, position) of the region, the model runs on the
/// sequence with that position set to that symbol. The score is the change in output from
/// the unmutated sequence, centred over the symbols at each position, and averaged over
/// the output's elements (or over the `target` column's). The result, (A, end - start)
/// per example, is multiplied by the sequence unless `hypothetical`.
public struct SaturationMutagenesis: SequenceFunction {
    public let start: Int
    public let end: Int
    /// The output column (first axis after the batch) to score; nil scores all of them.
    public let target: Int?
    public let hypothetical: Bool
    /// How many mutants run through the model at a time.
    public let chunk: Int

    public init(start: Int, end: Int, target: Int?, hypothetical: Bool, chunk: Int) {
        self.start = start
        self.end = end
        self.target = target
        self.hypothetical = hypothetical
        self.chunk = max(1, chunk)
    }

    /// Checks the region like tangermeme (a negative end counts from past the last position) and the model's outputs.
    public static func validated(start: Int?, end: Int?, target: Int?, hypothetical: Bool, length: Int, model: ONNXModel, chunk: Int) throws
        -> SaturationMutagenesis
    {
        let s = start ?? 0
        let given = end ?? length
        let e = given < 0 ? length + 1 + given : given
        guard s >= 0 && s < length else {
            throw FunctionError.invalidOption("--start", "the region \(s)..<\(given) falls off sequences of length \(length)")
        }
        guard e >= 0 && e <= length else {
            throw FunctionError.invalidOption("--end", "the region \(s)..<\(given) falls off sequences of length \(length)")
        }
        guard e > s else { throw FunctionError.invalidOption("--end", "the region \(s)..<\(given) is empty: its end must come after its start") }
        guard model.outputs.count == 1 else {
            throw FunctionError.invalidOption(
                "--func",
                "saturation-mutagenesis scores a model with one output, and \(model.path) has \(model.outputs.count) (\(model.outputs.map(\.name).joined(separator: ", "))); export a model that returns the output to score"
            )
        }
        if let target, target < 0 { throw FunctionError.invalidOption("--target", "\(target) is not an output column") }
        return SaturationMutagenesis(start: s, end: e, target: target, hypothetical: hypothetical, chunk: chunk)
    }

    public func apply(model: ONNXModel, batch: Batch) throws -> OutputTree {
        let (a, l) = (batch.x.shape[1], batch.x.shape[2])
        let width = end - start
        let mutants = a * width
        let y0 = try Predict.single(model: model, batch: batch)
        let outShape = Array(y0.shape.dropFirst())
        let outCount = outShape.elementCount
        guard !outShape.isEmpty else {
            throw FunctionError.invalidOption("--func", "saturation-mutagenesis needs outputs of shape (batch, outputs, ...), the model gives \(y0.shape)")
        }
        if let target, target >= outShape[0] {
            throw FunctionError.invalidOption("--target", "\(target) is out of range: the model has \(outShape[0]) output columns")
        }
        // yHat[e][k * outCount + o]: example e's output o with mutant k = symbol * width + (position - start).
        var yHat = [[Float]](repeating: [Float](repeating: 0, count: mutants * outCount), count: batch.count)
        var examplesOf = [[Int]](repeating: [], count: batch.distinctCount)
        for (e, r) in batch.xRows.enumerated() { examplesOf[r].append(e) }
        for (d, examples) in examplesOf.enumerated() where !examples.isEmpty {
            let per = max(1, chunk / examples.count)
            var first = 0
            while first < mutants {
                let count = min(per, mutants - first)
                let x = mutate(batch.x, row: d, mutants: first..<(first + count), length: l, alphabet: a)
                let rows = examples.flatMap { _ in Array(0..<count) }
                let args = batch.args.map { $0.gatherRows(examples.flatMap { [Int](repeating: $0, count: count) }) }
                let y = try Predict.single(model: model, batch: Batch(x: x, xRows: rows, args: args))
                y.storage.withUnsafeBufferPointer { p in
                    for (i, e) in examples.enumerated() {
                        for k in 0..<count {
                            let src = (i * count + k) * outCount
                            for o in 0..<outCount { yHat[e][(first + k) * outCount + o] = p[src + o] }
                        }
                    }
                }
                first += count
            }
        }
        // Score: the change from y0, centred over symbols, averaged over the chosen outputs.
        let selected: [Int] = {
            guard let target else { return Array(0..<outCount) }
            let inner = outCount / outShape[0]
            return Array((target * inner)..<((target + 1) * inner))
        }()
        let xb = batch.expandedX
        let out = Tensor<Float>(shape: [batch.count, a, width]) { out in
            out.initialize(repeating: 0)
            y0.storage.withUnsafeBufferPointer { p0 in
                xb.storage.withUnsafeBufferPointer { px in
                    var diffs = [Float](repeating: 0, count: a)
                    for e in 0..<batch.count {
                        for w in 0..<width {
                            for o in selected {
                                var mean: Float = 0
                                for c in 0..<a {
                                    diffs[c] = yHat[e][((c * width) + w) * outCount + o] - p0[e * outCount + o]
                                    mean += diffs[c]
                                }
                                mean /= Float(a)
                                for c in 0..<a { out[(e * a + c) * width + w] += diffs[c] - mean }
                            }
                            for c in 0..<a {
                                var v = out[(e * a + c) * width + w] / Float(selected.count)
                                if !hypothetical { v *= px[(e * a + c) * l + start + w] }
                                out[(e * a + c) * width + w] = v
                            }
                        }
                    }
                }
            }
        }
        return .leaf(out)
    }

    /// Mutants `range` of distinct row `row`: mutant k sets position `start + k % width` to symbol `k / width`.
    func mutate(_ x: Tensor<Float>, row: Int, mutants range: Range<Int>, length l: Int, alphabet a: Int) -> Tensor<Float> {
        let width = end - start
        return Tensor(shape: [range.count, a, l]) { out in
            x.storage.withUnsafeBufferPointer { p in
                for (i, k) in range.enumerated() {
                    let dst = out.baseAddress! + i * a * l
                    dst.initialize(from: p.baseAddress! + row * a * l, count: a * l)
                    let pos = start + k % width, symbol = k / width
                    for c in 0..<a { dst[c * l + pos] = c == symbol ? 1 : 0 }
                }
            }
        }
    }
}
