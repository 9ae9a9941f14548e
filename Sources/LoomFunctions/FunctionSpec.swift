import LoomONNX

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
    /// deep-lift-shap: ONNX operator types that take DeepLIFT's rule, or do not, whatever the export says.
    public var nonlinear: [String]?
    public var linear: [String]?

    public init(
        name: Name, innerFunc: Name? = nil, motif: String? = nil, start: Int? = nil, alphabet: String = "ACGT",
        end: Int? = nil, n: Int? = nil, randomState: Int? = nil, target: Int? = nil, nShuffles: Int? = nil,
        hypothetical: Bool = false, references: String? = nil
    ) {
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
        return [
            name.rawValue, o(innerFunc?.rawValue), o(motif), o(start), alphabet, o(end), o(n), o(randomState),
            o(target), o(nShuffles), "\(hypothetical)", o(references)
        ].joined(separator: " ")
            + (nonlinear ?? []).sorted().map { " +\($0)" }.joined() + (linear ?? []).sorted().map { " -\($0)" }.joined()
    }

    /// Whether deep-lift-shap runs, as the function or inside it.
    public var runsDeepLiftShap: Bool { name == .deepLiftShap || innerFunc == .deepLiftShap }

    /// Whether the function draws shuffles (and so needs a seed to be repeatable).
    public var usesRandomState: Bool { name == .ablate || runsDeepLiftShap }

    /// Whether X must be strictly one-hot, every column one symbol (deep-lift-shap's references need it).
    public var requiresStrictOneHot: Bool { runsDeepLiftShap }

    /// Whether the function needs X to be one-hot (all-zero columns, unknown bases, allowed unless strict).
    public var requiresOneHot: Bool { name == .marginalize || name == .ablate || requiresStrictOneHot }

    /// About how many forward passes of the model one example costs, a backward pass counting as two.
    ///
    /// For sizing units of work (see `ShardPlan`), not for timing: it only has to tell a
    /// cheap function from an expensive one.
    public func forwardPassesPerExample(sequenceLength: Int) -> Double {
        func passes(_ name: Name) -> Double {
            switch name {
            case .predict: return 1
            // Each example and each reference once forward and once backward.
            case .deepLiftShap: return Double(nShuffles ?? 20) * 2 * 3
            case .saturationMutagenesis:
                let alphabetSize = (try? Alphabet(parsing: alphabet).count) ?? 4
                // As an inner function it mutates the whole sequence (--start and --end are the outer function's).
                let region = self.name == .saturationMutagenesis ? max(1, (end ?? sequenceLength) - (start ?? 0)) : sequenceLength
                return Double(1 + region * max(1, alphabetSize - 1))
            case .marginalize, .ablate: return 1
            }
        }
        let inner = passes(innerFunc ?? .predict)
        switch name {
        case .marginalize: return 2 * inner
        case .ablate: return Double(1 + (n ?? 20)) * inner
        default: return passes(name)
        }
    }

    /// The functions marginalize and ablate can apply before and after (`--inner-func`).
    public static let innerFunctions: [Name] = [.predict, .deepLiftShap, .saturationMutagenesis]

    /// Builds the function for a job, refusing options that cannot apply to its data and model.
    public func makeFunction(_ context: FunctionContext) throws -> any SequenceFunction {
        let alphabet = try Alphabet(parsing: self.alphabet)
        let length = context.sequenceLength
        try checkReferencesFlag()
        func inner(allowed: [Name], in outer: String) throws -> any SequenceFunction {
            let chosen = innerFunc ?? .predict
            guard allowed.contains(chosen) else {
                throw FunctionError.invalidOption(
                    "--inner-func", "'\(chosen.rawValue)' cannot run inside \(outer); use \(allowed.map(\.rawValue).joined(separator: " or "))")
            }
            switch chosen {
            case .predict: return Predict()
            case .deepLiftShap: return try deepLiftShap(context)
            default:
                // tangermeme's saturation_mutagenesis with its own defaults: the whole sequence
                // (the outer function's --start and --end place its motif or region).
                return try SaturationMutagenesis.validated(
                    start: nil, end: nil, target: target, hypothetical: hypothetical, length: length, model: context.model,
                    chunk: context.batchSize)
            }
        }
        switch name {
        case .predict:
            try refuseInner()
            return Predict()
        case .marginalize:
            guard let motif else { throw FunctionError.invalidOption("--motif", "marginalize needs a motif, e.g. --motif TGA") }
            return try Marginalize(
                motif: motif, start: start, alphabet: alphabet, sequenceLength: length,
                inner: inner(allowed: Self.innerFunctions, in: "marginalize"))
        case .ablate:
            let (s, e) = try RegionShuffle.region(start: start, end: end, length: length, function: "ablate")
            let n = self.n ?? 20
            guard n >= 1 else { throw FunctionError.invalidOption("--n", "ablate needs at least one shuffle, got \(n)") }
            return Ablate(
                shuffle: RegionShuffle(start: s, end: e, count: n, seed: try seed()),
                inner: try inner(allowed: Self.innerFunctions, in: "ablate"))
        case .saturationMutagenesis:
            try refuseInner()
            return try SaturationMutagenesis.validated(
                start: start, end: end, target: target, hypothetical: hypothetical,
                length: length, model: context.model, chunk: context.batchSize)
        case .deepLiftShap:
            try refuseInner()
            return try deepLiftShap(context)
        }
    }

    /// Refuses `--references` for functions other than deep-lift-shap itself.
    public func checkReferencesFlag() throws {
        if references != nil && name != .deepLiftShap {
            throw FunctionError.invalidOption("--references", "only applies to --func deep-lift-shap (inner functions draw their own shuffled references)")
        }
    }

    private func refuseInner() throws {
        if let innerFunc {
            throw FunctionError.invalidOption(
                "--inner-func", "only marginalize and ablate take an inner function, not \(name.rawValue) (got '\(innerFunc.rawValue)')")
        }
    }

    /// The seed; the command line draws one when the user gives none, so it is always set by now.
    func seed() throws -> Int {
        guard let randomState else { throw FunctionError.invalidOption("--random-state", "\(name.rawValue) needs a seed") }
        return randomState
    }

    func deepLiftShap(_ context: FunctionContext) throws -> DeepLiftShap {
        try context.model.checkAttributable(function: "deep-lift-shap")
        let target = self.target ?? 0
        guard target >= 0 else { throw FunctionError.invalidOption("--target", "\(target) is not an output column") }
        let shuffles = nShuffles ?? 20
        guard shuffles >= 1 else { throw FunctionError.invalidOption("--n-shuffles", "deep-lift-shap needs at least one reference, got \(shuffles)") }
        let rules = try DeepLiftRules(model: context.model, nonlinear: Set(nonlinear ?? []), linear: Set(linear ?? []))
        return DeepLiftShap(
            target: target, shuffles: shuffles, seed: context.references == nil ? try seed() : randomState,
            references: context.references, hypothetical: hypothetical, pairsPerPass: context.batchSize, rules: rules)
    }
}

/// What building a function may consult besides its options: the data's shape, the model, the batch size.
public struct FunctionContext: Sendable {
    public var sequenceLength: Int
    public var model: ONNXModel
    public var batchSize: Int
    /// deep-lift-shap's given references, if `--references` was passed.
    public var references: ReferenceSet?

    public init(sequenceLength: Int, model: ONNXModel, batchSize: Int, references: ReferenceSet? = nil) {
        self.sequenceLength = sequenceLength
        self.model = model
        self.batchSize = batchSize
        self.references = references
    }
}
