import LoomFunctions
import LoomTensor

/// The data of a job held in memory: X, the extra inputs, and the index space over them.
///
/// The product itself is never materialized: ``batch(for:)`` gathers one batch's rows.
public struct JobInputs: Sendable {
    /// The sequences, (n, A, L).
    public let x: Tensor<Float>
    /// The extra model inputs, each (m_k, ...).
    public let args: [Tensor<Float>]
    /// The examples.
    public let space: IndexSpace

    /// Checks shapes and builds the index space.
    ///
    /// - Parameters:
    ///   - names: the files behind X and each arg, for messages.
    public init(
        x: Tensor<Float>, args: [Tensor<Float>], mode: ProductMode, alphabetSize: Int,
        xName: String = "X", argNames: [String]? = nil
    ) throws {
        let names = argNames ?? args.indices.map { "arg \($0)" }
        guard x.rank == 3 else {
            throw IndexSpaceError("\(xName): X must be 3-D (sequences, alphabet, length); got shape \(x.shape)")
        }
        guard x.shape[0] > 0 else { throw IndexSpaceError("\(xName): X is empty (shape \(x.shape)): there are no sequences") }
        guard x.shape[1] == alphabetSize else {
            throw IndexSpaceError(
                "\(xName): X's alphabet axis has \(x.shape[1]) symbols, the alphabet has \(alphabetSize) (X must be (n, \(alphabetSize), L); set --alphabet if yours differs)"
            )
        }
        guard x.shape[2] > 0 else { throw IndexSpaceError("\(xName): X has sequences of length 0") }
        for (a, name) in zip(args, names) where a.rank == 0 {
            throw IndexSpaceError("\(name): an extra input must have a first axis to index (got a scalar)")
        }
        self.x = x
        self.args = args
        self.space = try IndexSpace(mode: mode, sequences: x.shape[0], argLengths: args.map { $0.shape[0] }, argNames: names)
    }

    /// The sequence length L.
    public var sequenceLength: Int { x.shape[2] }

    /// The batch of examples `range`, gathered row by row.
    ///
    /// Each distinct sequence of the batch is copied once (consecutive examples share
    /// their X row); with `shareRows` false every example gets its own copy.
    public func batch(for range: Range<Int>, shareRows: Bool = true) -> Batch {
        let (distinct, rows) = space.sequenceRows(for: range, shareRows: shareRows)
        let xRow = x.shape[1] * x.shape[2]
        let xb = Tensor<Float>(shape: [distinct.count] + Array(x.shape.dropFirst())) { out in
            x.storage.withUnsafeBufferPointer { src in
                for (i, row) in distinct.enumerated() {
                    (out.baseAddress! + i * xRow).initialize(from: src.baseAddress! + row * xRow, count: xRow)
                }
            }
        }
        return space.batch(for: range, distinctX: xb, rows: rows, args: args)
    }

    /// Whether X is strictly one-hot (each column one 1, or all zeros), so it can travel as one byte per position.
    public var isOneHot: Bool { (try? checkOneHot(allowUnknown: true)) != nil }

    /// Checks that every column of X is one-hot (or all zero, an unknown base, if `allowUnknown`); names the first bad sequence.
    ///
    /// One pass in memory order (each channel's positions are contiguous), with a per-position
    /// count; a sequence found at fault is scanned again position by position, so the message
    /// names the first bad position whatever the kind of fault.
    public func checkOneHot(allowUnknown: Bool) throws {
        let (n, a, l) = (x.shape[0], x.shape[1], x.shape[2])
        try x.storage.withUnsafeBufferPointer { p in
            guard let base = p.baseAddress else { return }
            try withUnsafeTemporaryAllocation(of: Float.self, capacity: max(l, 1)) { sums in
                for i in 0..<n {
                    let seq = base + i * a * l
                    sums.initialize(repeating: 0)
                    var bad = false
                    for c in 0..<a {
                        let row = seq + c * l
                        for pos in 0..<l {
                            let v = row[pos]
                            if v != 0 && v != 1 { bad = true }
                            sums[pos] += v
                        }
                    }
                    if !bad {
                        for pos in 0..<l where sums[pos] > 1 || (sums[pos] == 0 && !allowUnknown) { bad = true; break }
                    }
                    if bad { try Self.explainOneHotFault(seq, sequence: i, alphabetSize: a, length: l, allowUnknown: allowUnknown) }
                }
            }
        }
    }

    /// Throws the error for the first bad position of a sequence known to be at fault.
    private static func explainOneHotFault(_ p: UnsafePointer<Float>, sequence i: Int, alphabetSize a: Int, length l: Int, allowUnknown: Bool) throws {
        for pos in 0..<l {
            var sum: Float = 0
            for c in 0..<a {
                let v = p[c * l + pos]
                guard v == 0 || v == 1 else {
                    throw FunctionError.notOneHot(sequence: i, "value \(v) at position \(pos); one-hot sequences hold only 0 and 1")
                }
                sum += v
            }
            guard sum <= 1 else {
                throw FunctionError.notOneHot(sequence: i, "\(Int(sum)) symbols are set at position \(pos)")
            }
            guard sum == 1 || allowUnknown else {
                throw FunctionError.notOneHot(
                    sequence: i, "no symbol is set at position \(pos) (an unknown base); deep-lift-shap needs every position to be one of the alphabet")
            }
        }
    }
}
