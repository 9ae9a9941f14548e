import FoundationEssentials
import LoomTensor

/// deep-lift-shap references given by the user: for each sequence of X, S one-hot references.
///
/// Held as one byte per position (the symbol, 255 for an all-zero column), which is how
/// they travel to workers too: a reference set is a quarter of X's size per reference.
public struct ReferenceSet: Codable, Sendable, Equatable {
    /// Sequences of X, references per sequence, alphabet size, length.
    public let count: Int, perSequence: Int, alphabetSize: Int, length: Int
    /// `codes[(i * perSequence + r) * length + pos]`.
    public let codes: [UInt8]

    /// Reads and checks an (N, S, A, L) tensor against X's N, A and L.
    public init(_ t: Tensor<Float>, file: String, sequences n: Int, alphabetSize a: Int, length l: Int) throws {
        guard t.rank == 4, t.shape[0] == n, t.shape[2] == a, t.shape[3] == l, t.shape[1] >= 1 else {
            throw FunctionError.invalidOption("--references", "\(file) has shape \(t.shape); it must be (N, S, A, L) = (\(n), S, \(a), \(l)) for X")
        }
        let s = t.shape[1]
        var codes = [UInt8](repeating: 255, count: n * s * l)
        try t.storage.withUnsafeBufferPointer { p in
            for i in 0..<(n * s) {
                for pos in 0..<l {
                    var set = 0
                    for c in 0..<a {
                        let v = p[(i * a + c) * l + pos]
                        guard v == 0 || v == 1 else {
                            throw FunctionError.invalidOption(
                                "--references", "\(file): reference \(i % s) of sequence \(i / s) is not one-hot (value \(v) at position \(pos))")
                        }
                        if v == 1 { set += 1; codes[i * l + pos] = UInt8(c) }
                    }
                    guard set <= 1 else {
                        throw FunctionError.invalidOption(
                            "--references", "\(file): reference \(i % s) of sequence \(i / s) has \(set) symbols at position \(pos)")
                    }
                }
            }
        }
        self.count = n
        self.perSequence = s
        self.alphabetSize = a
        self.length = l
        self.codes = codes
    }

    /// Reference `r` of sequence `i`, one-hot, written to `out` (A * L floats).
    public func write(sequence i: Int, reference r: Int, into out: UnsafeMutablePointer<Float>) {
        out.initialize(repeating: 0, count: alphabetSize * length)
        let base = (i * perSequence + r) * length
        for pos in 0..<length where codes[base + pos] != 255 {
            out[Int(codes[base + pos]) * length + pos] = 1
        }
    }
}

extension ReferenceSet {
    enum CodingKeys: String, CodingKey { case count, perSequence, alphabetSize, length, codes }

    /// The codes travel as base64 (a JSON array of numbers would triple them).
    public func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(count, forKey: .count)
        try c.encode(perSequence, forKey: .perSequence)
        try c.encode(alphabetSize, forKey: .alphabetSize)
        try c.encode(length, forKey: .length)
        try c.encode(Data(codes), forKey: .codes)
    }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        count = try c.decode(Int.self, forKey: .count)
        perSequence = try c.decode(Int.self, forKey: .perSequence)
        alphabetSize = try c.decode(Int.self, forKey: .alphabetSize)
        length = try c.decode(Int.self, forKey: .length)
        codes = Array(try c.decode(Data.self, forKey: .codes))
        guard codes.count == count * perSequence * length, count >= 0, perSequence >= 1, alphabetSize >= 1, length >= 1 else {
            throw DecodingError.dataCorruptedError(forKey: .codes, in: c, debugDescription: "reference codes do not fit their shape")
        }
    }
}
