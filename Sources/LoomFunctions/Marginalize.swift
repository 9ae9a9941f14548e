import LoomONNX
import LoomTensor

/// tangermeme's `marginalize`: the inner function before and after substituting a motif.
///
/// Returns `(y_before, y_after)`. Motif positions written `N` keep the original base.
public struct Marginalize: SequenceFunction {
    /// The motif, one-hot as (A, k), with all-zero columns for `N`.
    public let motif: [[Float]]
    /// Where the motif starts.
    public let start: Int
    /// The function applied before and after.
    public let inner: any SequenceFunction
    public var loadNotes: [String] { inner.loadNotes + (caseNote.map { [$0] } ?? []) }
    /// Said when the job loads if the motif had bases only its uppercase matches.
    let caseNote: String?

    /// Validates the motif and start against the alphabet and the sequence length.
    public init(motif text: String, start: Int?, alphabet: Alphabet, sequenceLength: Int, inner: any SequenceFunction) throws {
        guard !text.isEmpty else { throw FunctionError.invalidOption("--motif", "the motif is empty") }
        var columns: [[Float]] = []
        var folded = false
        for ch in text {
            let upper = Character(ch.uppercased())
            if upper == "N" {
                folded = folded || ch != "N"
                columns.append([Float](repeating: 0, count: alphabet.count))
                continue
            }
            folded = folded || (!alphabet.symbols.contains(ch) && alphabet.symbols.contains(upper))
            guard let k = alphabet.symbols.firstIndex(of: ch) ?? alphabet.symbols.firstIndex(of: upper) else {
                throw FunctionError.invalidOption("--motif", "'\(ch)' in '\(text)' is not in the alphabet \(alphabet) (or N)")
            }
            var col = [Float](repeating: 0, count: alphabet.count)
            col[k] = 1
            columns.append(col)
        }
        let k = columns.count
        guard k <= sequenceLength else {
            throw FunctionError.invalidOption("--motif", "the motif (\(k) bases) is longer than the sequences (\(sequenceLength))")
        }
        let s = start ?? (sequenceLength / 2 - k / 2)
        guard s >= 0 && s <= sequenceLength - k else {
            throw FunctionError.invalidOption(
                "--start", "\(s) is out of range: a \(k)-base motif in sequences of length \(sequenceLength) starts in 0...\(sequenceLength - k)")
        }
        self.motif = columns
        self.start = s
        self.inner = inner
        // tangermeme 1.6 refuses lowercase bases ("not in `alphabet` or in `ignore`"); Loom takes them, and says so.
        caseNote =
            folded
            ? "--motif \(text) is read as \(text.uppercased()): lowercase bases are taken as uppercase (tangermeme 1.6 refuses them)" : nil
    }

    /// The batch's sequences with the motif written in.
    public func substitute(_ x: Tensor<Float>) -> Tensor<Float> {
        var out = x
        let (b, a, l) = (x.shape[0], x.shape[1], x.shape[2])
        out.storage.withUnsafeMutableBufferPointer { p in
            for n in 0..<b {
                for (offset, column) in motif.enumerated() where column.contains(where: { $0 != 0 }) {
                    for c in 0..<a { p[(n * a + c) * l + start + offset] = column[c] }
                }
            }
        }
        return out
    }

    public func apply(model: ONNXModel, batch: Batch) throws -> OutputTree {
        let before = try inner.apply(model: model, batch: batch)
        let after = try inner.apply(model: model, batch: batch.replacingX(substitute(batch.x)))
        return .list([before, after])
    }
}
