/// Which function to apply to every example, with its options: what `loom run --func` selects.
///
/// A spec is plain data (Codable) so that it can be written to the manifest, hashed
/// into a job's identity and sent to workers. ``makeFunction(sequenceLength:)``
/// validates it against the data and builds the function.
public struct FunctionSpec: Codable, Sendable, Equatable {
    /// The function names `--func` accepts.
    public enum Name: String, Codable, Sendable, CaseIterable {
        case predict
        case marginalize
        case ablate
        case deepLiftShap = "deep-lift-shap"
        case saturationMutagenesis = "saturation-mutagenesis"
    }

    /// The function.
    public var name: Name
    /// The function marginalize applies before and after the substitution.
    public var innerFunc: Name?
    /// marginalize: the motif, over the alphabet, `N` keeping the original base.
    public var motif: String?
    /// marginalize: where the motif starts (default `L/2 - len(motif)/2`).
    public var start: Int?
    /// The symbols of the one-hot axis.
    public var alphabet: String
    /// ablate and saturation-mutagenesis: where the region ends (exclusive).
    public var end: Int?
    /// ablate: the number of shuffles.
    public var n: Int?
    /// The seed of tangermeme's shuffle streams.
    public var randomState: Int?
    /// deep-lift-shap and saturation-mutagenesis: the output column to attribute.
    public var target: Int?
    /// deep-lift-shap: the number of dinucleotide-shuffled references.
    public var nShuffles: Int?
    /// deep-lift-shap and saturation-mutagenesis: return hypothetical contributions.
    public var hypothetical: Bool
    /// deep-lift-shap: a `.npy` of references (N, S, A, L).
    public var references: String?

    public init(name: Name, innerFunc: Name? = nil, motif: String? = nil, start: Int? = nil, alphabet: String = "ACGT",
                end: Int? = nil, n: Int? = nil, randomState: Int? = nil, target: Int? = nil, nShuffles: Int? = nil,
                hypothetical: Bool = false, references: String? = nil) {
        self.name = name
        self.innerFunc = innerFunc
        self.motif = motif
        self.start = start
        self.alphabet = alphabet
        self.end = end
        self.n = n
        self.randomState = randomState
        self.target = target
        self.nShuffles = nShuffles
        self.hypothetical = hypothetical
        self.references = references
    }

    /// A canonical text of the options, hashed into a job's identity.
    public var canonicalText: String {
        func o<T>(_ v: T?) -> String { v.map { "\($0)" } ?? "-" }
        return [name.rawValue, o(innerFunc?.rawValue), o(motif), o(start), alphabet, o(end), o(n), o(randomState),
                o(target), o(nShuffles), "\(hypothetical)", o(references)].joined(separator: " ")
    }

    /// Builds the function for sequences of length `sequenceLength`, refusing options that cannot apply.
    public func makeFunction(sequenceLength: Int) throws -> any SequenceFunction {
        let alphabet = try Alphabet(parsing: self.alphabet)
        switch name {
        case .predict:
            return Predict()
        case .marginalize:
            let inner: any SequenceFunction
            switch innerFunc ?? .predict {
            case .predict: inner = Predict()
            case let other:
                throw FunctionError.invalidOption("--inner-func", "'\(other.rawValue)' inside marginalize is not available in this version of Loom (predict is)")
            }
            guard let motif else { throw FunctionError.invalidOption("--motif", "marginalize needs a motif, e.g. --motif TGA") }
            return try Marginalize(motif: motif, start: start, alphabet: alphabet, sequenceLength: sequenceLength, inner: inner)
        case .ablate, .deepLiftShap, .saturationMutagenesis:
            throw FunctionError.invalidOption("--func", "'\(name.rawValue)' is not available in this version of Loom (predict and marginalize are)")
        }
    }

    /// Whether the function needs X to be strictly one-hot.
    public var requiresOneHot: Bool { name != .predict }
}
