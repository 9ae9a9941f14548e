import LoomFunctions
import LoomGenome
import LoomONNX
import LoomTensor

/// A job ready to run: the model compiled, the inputs loaded and checked, the function built.
///
/// Loading does every check that can fail before any result is written: files,
/// dtypes, shapes, the index space, the model's inputs against the args, the
/// function's options. What is left to fail at run time is what only running shows.
public final class Job: Sendable {
    /// The job as the user gave it, with the shard size resolved.
    public let spec: JobSpec
    /// The compiled model.
    public let model: ONNXModel
    /// X, the args and the index space.
    public let inputs: JobInputs
    /// The function applied to each batch.
    public let function: any SequenceFunction
    /// deep-lift-shap's references from `--references`, checked.
    public let references: ReferenceSet?
    /// The cut into shards.
    public let plan: ShardPlan
    /// SHA-256 of X's and each arg's file contents.
    public let inputDigests: [String]
    /// The job's identity: a hash of the model, the inputs, the mode, the function and its options, and the batch size.
    public let id: String
    /// The shapes and dtypes of the input files, for the manifest.
    public let inputDescriptions: [InputDescription]
    /// Where X's rows came from, when X was read from a FASTA file.
    public let sequences: SequenceSource?
    /// What the user should know once the job has loaded (regions dropped, rules chosen), one line each.
    public let loadNotes: [String]

    /// An input file as the manifest records it.
    public struct InputDescription: Codable, Sendable, Equatable {
        public var path: String
        public var shape: [Int]
        public var dtype: String
        public var sha256: String
    }

    /// Loads and checks everything a job needs.
    public init(spec given: JobSpec) throws {
        var spec = given
        let alphabet = try Alphabet(parsing: spec.function.alphabet)
        let x = try JobX(spec: spec, alphabet: alphabet)
        let args = try spec.argPaths.map { try NpyArray.read(path: $0) }
        let inputs = try JobInputs(
            x: x.tensor, args: args.map { $0.floatTensor() }, mode: spec.mode,
            alphabetSize: alphabet.count, xName: spec.xPath, argNames: spec.argPaths)
        let model = try ONNXModel(path: spec.modelPath)
        try Job.checkModelInputs(model, inputs: inputs, spec: spec)
        if spec.function.requiresOneHot { try inputs.checkOneHot(allowUnknown: !spec.function.requiresStrictOneHot) }
        var references: ReferenceSet?
        try spec.function.checkReferencesFlag()
        if let path = spec.function.references {
            references = try ReferenceSet(
                NpyArray.read(path: path).floatTensor(), file: path, sequences: inputs.x.shape[0],
                alphabetSize: alphabet.count, length: inputs.sequenceLength)
        }
        self.references = references
        self.function = try spec.function.makeFunction(
            FunctionContext(
                sequenceLength: inputs.sequenceLength, model: model,
                batchSize: spec.batchSize, references: references))
        self.plan = try ShardPlan(
            examples: inputs.space.count, batchSize: spec.batchSize,
            batchesPerShard: spec.shardBatches ?? Job.automaticBatchesPerShard(spec: spec, model: model, inputs: inputs))
        // The spec as run: the shard size chosen is recorded (in job.json, the manifest, for workers).
        spec.shardBatches = plan.batchesPerShard
        self.spec = spec
        self.model = model
        self.inputs = inputs
        let argDigests = args.map { a in
            var h = SHA256()
            h.update("\(a.dtype.rawValue)\(a.shape)")
            h.update(a.data)
            return h.finalize()
        }
        let digests = [x.digest] + argDigests
        self.inputDigests = digests
        self.inputDescriptions =
            [InputDescription(path: spec.xPath, shape: x.tensor.shape, dtype: x.dtype, sha256: x.digest)]
            + zip(zip(spec.argPaths, args), argDigests).map { f, d in
                InputDescription(path: f.0, shape: f.1.shape, dtype: f.1.dtype.numpyName, sha256: d)
            }
        self.sequences = x.source
        self.loadNotes = x.notes + function.loadNotes
        var h = SHA256()
        h.update("loom-job-v1\n")
        h.update("model \(model.file.sha256)\n")
        for d in digests { h.update("input \(d)\n") }
        if let references { h.update("references \(references.perSequence) \(SHA256.hex(references.codes))\n") }
        h.update("mode \(spec.mode.rawValue)\nbatch \(spec.batchSize)\n")
        if !spec.shareRows { h.update("unshared rows\n") }
        if plan.batchesPerShard != 1 { h.update("shard \(plan.batchesPerShard) batches\n") }
        // Kernels change the bits (BLAS sums in another order): a job computes with one set.
        if let kernels = spec.kernels { h.update("kernels \(kernels.rawValue)\n") }
        // So does Loom's own arithmetic: a folder is resumed only by a Loom that computes the same bits.
        h.update("numerics \(LoomVersion.numerics)\n")
        h.update("function \(spec.function.canonicalText)\n")
        self.id = h.finalize()
    }

    /// The batches per shard for a job that names none: from an estimate of one example's work,
    /// the model run once on the first example (see ``ShardPlan/automaticBatchesPerShard(examples:batchSize:operationsPerExample:)``).
    static func automaticBatchesPerShard(spec: JobSpec, model: ONNXModel, inputs: JobInputs) -> Int {
        let space = inputs.space
        guard space.count > 0 else { return 1 }
        let first = space.coordinates(of: 0)
        let feeds = [inputs.x.gatherRows([first.x])] + zip(inputs.args, first.args).map { $0.gatherRows([$1]) }
        // A model that fails on the first example fails the job in its first shard, with its own message.
        guard let perPass = try? model.costPerExample(feeds: feeds) else { return 1 }
        let passes = spec.function.forwardPassesPerExample(sequenceLength: inputs.sequenceLength)
        // Results: about the model's outputs once per pass (saturation mutagenesis keeps one per
        // variant; attribution maps are X-sized, but those jobs are expensive: one batch per shard).
        return ShardPlan.automaticBatchesPerShard(
            examples: space.count, batchSize: spec.batchSize, operationsPerExample: perPass.operations * passes,
            resultBytesPerExample: 4 * perPass.outputElements * passes)
    }

    /// Refuses a model whose inputs do not fit X plus the args, naming the input at fault.
    static func checkModelInputs(_ model: ONNXModel, inputs: JobInputs, spec: JobSpec) throws {
        let declared = model.inputs
        let given = 1 + inputs.args.count
        guard declared.count == given else {
            let names = declared.map(\.name).joined(separator: ", ")
            throw ONNXError(
                file: model.path, kind: .inputMismatch,
                detail:
                    "the model takes \(declared.count) input\(declared.count == 1 ? "" : "s") (\(names)), but loom was given X and \(inputs.args.count) --arg (\(given) in all); pass one --arg per model input after X"
            )
        }
        let rows = [inputs.x] + inputs.args
        let files = [spec.xPath] + spec.argPaths
        for (k, (info, tensor)) in zip(declared, rows).enumerated() {
            guard let dims = info.shape else { continue }
            let rowShape = Array(tensor.shape.dropFirst())
            let what = k == 0 ? "X (\(files[0]))" : "--arg \(files[k])"
            guard dims.count == rowShape.count + 1 else {
                throw ONNXError(
                    file: model.path, kind: .inputMismatch,
                    detail:
                        "model input '\(info.name)' is \(info.shapeText); \(what) gives batches of shape [batch, \(rowShape.map(String.init).joined(separator: ", "))]"
                )
            }
            for (axis, d) in dims.enumerated().dropFirst() {
                if let d, d != rowShape[axis - 1] {
                    throw ONNXError(
                        file: model.path, kind: .inputMismatch,
                        detail:
                            "model input '\(info.name)' is \(info.shapeText); \(what) gives batches of shape [batch, \(rowShape.map(String.init).joined(separator: ", "))]"
                    )
                }
            }
            if info.elementType != "float32" {
                throw ONNXError(file: model.path, kind: .inputMismatch, detail: "model input '\(info.name)' is \(info.elementType); Loom feeds float32")
            }
        }
    }
}
