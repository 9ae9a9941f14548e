import ArgumentParser
import LoomCluster
import LoomFunctions
import LoomONNX
import LoomProduct
import LoomTensor

extension ProductMode: ExpressibleByArgument {}
extension FunctionSpec.Name: ExpressibleByArgument {}

/// `--inner-func`'s values: the functions marginalize and ablate can apply (``FunctionSpec/innerFunctions``).
enum InnerFunction: String, ExpressibleByArgument, CaseIterable {
    case predict
    case deepLiftShap = "deep-lift-shap"
    case saturationMutagenesis = "saturation-mutagenesis"

    var name: FunctionSpec.Name { FunctionSpec.Name(rawValue: rawValue)! }
}

/// The flags that define a job, shared by `loom run` (and later by the coordinator).
struct JobOptions: ParsableArguments {
    @Option(help: "pairwise: zip the args and cross them with X; product: the full cartesian product.")
    var mode: ProductMode

    @Option(name: .customLong("func"), help: "The function to apply: \(FunctionSpec.Name.allCases.map(\.rawValue).joined(separator: ", ")).")
    var function: FunctionSpec.Name = .predict

    @Option(help: "The ONNX model; its inputs are X, then one per --arg.")
    var model: String

    @Option(
        name: .customLong("x"),
        help: "The sequences: an (n, A, L) .npy file, or a FASTA file (plain, gzip or bgzip) whose records are the rows, or, with --regions, a genome.")
    var x: String

    @Option(
        help: ArgumentHelp(
            "A BED or narrowPeak file (plain or gzip): X's rows are the --length windows of the FASTA --x centred on its regions, as tangermeme's extract_loci cuts them.",
            valueName: "bed"))
    var regions: String?

    @Option(
        parsing: .unconditional,
        help: ArgumentHelp(
            "FASTA --x: the window in bases (extract_loci's in_window); without --regions, the centred window of each record (default: records of one length, whole).",
            valueName: "bases"))
    var length: Int?

    @Flag(help: "--regions is a narrowPeak file: centre each window on its summit (column 10), as extract_loci(summits=True).")
    var summits = false

    @Option(help: ArgumentHelp("FASTA --x: the characters encoded as all zeros (tangermeme's ignore; default N).", valueName: "chars"))
    var ignore: String?

    @Option(name: .customLong("arg"), help: "An extra model input (.npy, first axis indexed); repeat in model-input order.")
    var args: [String] = []

    @Option(parsing: .unconditional, help: "Examples per batch.")
    var batchSize: Int = 32

    @Option(
        parsing: .unconditional,
        help: ArgumentHelp(
            "Batches per shard, the unit of work that is scheduled, retried and journaled (default: chosen from the model's cost, so that a shard holds a few milliseconds of work).",
            valueName: "k"))
    var shardBatches: Int?

    @Option(help: "marginalize: the motif to substitute, over the alphabet; N keeps the original base.")
    var motif: String?

    @Option(parsing: .unconditional, help: "Where the motif or region starts (marginalize default: L/2 - len(motif)/2).")
    var start: Int?

    @Option(parsing: .unconditional, help: "ablate, saturation-mutagenesis: where the region ends (exclusive; negative counts from past the end, -1 = L).")
    var end: Int?

    @Option(help: "The symbols of X's one-hot axis, in order.")
    var alphabet: String = "ACGT"

    @Option(
        help:
            "The function marginalize and ablate apply before and after: predict (default), deep-lift-shap or saturation-mutagenesis (over the whole sequence), which then take their own options (--n-shuffles, --target, --hypothetical)."
    )
    var innerFunc: InnerFunction?

    @Option(name: .customLong("n"), parsing: .unconditional, help: "ablate: the number of shuffles (default 20).")
    var shuffles: Int?

    @Option(parsing: .unconditional, help: "The seed of the shuffle streams (deep-lift-shap, ablate); drawn and printed when not given.")
    var randomState: Int?

    @Option(
        parsing: .unconditional,
        help: "deep-lift-shap: the output column to attribute (default 0); saturation-mutagenesis: the column to score (default: all, averaged).")
    var target: Int?

    @Option(parsing: .unconditional, help: "deep-lift-shap: the number of dinucleotide-shuffled references (default 20).")
    var nShuffles: Int?

    @Flag(help: "deep-lift-shap, saturation-mutagenesis: return hypothetical contributions.")
    var hypothetical = false

    @Option(help: "deep-lift-shap: references, an (N, S, A, L) .npy file.")
    var references: String?

    @Option(
        help: ArgumentHelp(
            "deep-lift-shap: give every node of this ONNX operator type DeepLIFT's rule (rescale), whatever module it came from (tangermeme's additional_nonlinear_ops); repeat for more.",
            valueName: "op"))
    var nonlinear: [String] = []

    @Option(help: ArgumentHelp("deep-lift-shap: give every node of this ONNX operator type its plain gradient; repeat for more.", valueName: "op"))
    var linear: [String] = []

    @Flag(help: "Run the whole graph for every example, even the part that depends on X alone (for checking; slower).")
    var noShareRows = false

    @Option(
        help: ArgumentHelp(
            "The BLAS kernels every process of the job runs: auto (the best this CPU has), avx512, avx2 or sse3. On a cluster of mixed CPUs, name a set every node has.",
            valueName: "set"))
    var kernels: String = "auto"

    /// The job these flags describe, for results in `out`, and a note on its seed to print once it has loaded.
    ///
    /// When `out` holds the same job (the same flags), it is resumed as it was started: with
    /// its seed, if the job shuffles and was given none (so running the command again resumes
    /// it), and with its shard size, if `--shard-batches` is not given (a Loom whose automatic
    /// choice differs still resumes it). A job that shuffles and was given no seed otherwise
    /// draws one and says which.
    func spec(out: String?) throws -> (spec: JobSpec, seedNote: String?) {
        var spec = try spec()
        let drawsSeed = randomState == nil && references == nil && spec.function.usesRandomState
        if let out, let previous = OutputDirectory.claimedSpec(out) {
            var comparable = previous
            if drawsSeed { comparable.function.randomState = spec.function.randomState }
            if shardBatches == nil { comparable.shardBatches = nil }
            // With --kernels auto the kernels do not tell jobs apart: the same job resumes with those it
            // started with (a claim from before kernels were pinned: OpenBLAS choosing, as it ran).
            if kernels == "auto" { comparable.kernels = spec.kernels }
            if comparable == spec {
                if kernels == "auto", previous.kernels.map(\.isSupported) ?? true { spec.kernels = previous.kernels }
                // A claim without a shard size was written before shards could hold several batches: one.
                if shardBatches == nil { spec.shardBatches = previous.shardBatches ?? 1 }
                if drawsSeed, let seed = previous.function.randomState {
                    spec.function.randomState = seed
                    return (spec, "no --random-state given; using \(seed), the seed of the same job already in \(out)")
                }
                return (spec, nil)
            }
        }
        guard drawsSeed, let drawn = spec.function.randomState else { return (spec, nil) }
        return (spec, "no --random-state given; drew \(drawn) (pass --random-state \(drawn) to repeat this run)")
    }

    /// The job these flags describe (drawing a seed for functions that shuffle, when none is given).
    func spec() throws -> JobSpec {
        guard batchSize >= 1 else { throw ValidationError("--batch-size must be at least 1") }
        if let shardBatches, shardBatches < 1 { throw ValidationError("--shard-batches must be at least 1, got \(shardBatches)") }
        var function = FunctionSpec(
            name: function, innerFunc: innerFunc?.name, motif: motif, start: start, alphabet: alphabet,
            end: end, n: shuffles, randomState: randomState, target: target, nShuffles: nShuffles,
            hypothetical: hypothetical, references: references)
        if !nonlinear.isEmpty || !linear.isEmpty {
            guard function.runsDeepLiftShap else {
                throw ValidationError("--nonlinear and --linear choose deep-lift-shap's rules; this job runs no deep-lift-shap")
            }
            function.nonlinear = nonlinear.isEmpty ? nil : nonlinear
            function.linear = linear.isEmpty ? nil : linear
        }
        if function.usesRandomState && function.randomState == nil && references == nil {
            // As tangermeme does without a seed, draw one; print it so that the run can be repeated (and resumed).
            let drawn = Int.random(in: 0..<9_999_999)
            function.randomState = drawn
        }
        var spec = JobSpec(
            mode: mode, function: function, modelPath: model, xPath: x, argPaths: args, batchSize: batchSize,
            shareRows: !noShareRows, shardBatches: shardBatches)
        if let length, length < 1 { throw ValidationError("--length must be at least 1, got \(length)") }
        if regions != nil || length != nil || summits || ignore != nil {
            spec.sequences = SequenceOptions(regions: regions, length: length, summits: summits, ignore: ignore ?? "N")
        }
        spec.kernels = try KernelSet.resolve(kernels)
        return spec
    }
}

/// `loom run`: one job, in this process or on local worker processes.
struct Run: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "run", _superCommandName: "loom",
        abstract: "Run a job and write its results (one .npy per output leaf, then manifest.json) to --out.")

    @OptionGroup var job: JobOptions

    @Option(parsing: .unconditional, help: "Local worker processes; 0 computes in this process.")
    var workers: Int = 0

    @Option(help: "The results folder.")
    var out: String

    @Flag(help: "Replace the results of a different job in --out.")
    var overwrite = false

    @Flag(help: "No progress output.")
    var quiet = false

    @Flag(
        help:
            "Compute the first shard only, then print the shards, the result's size against the free space of --out, and an estimate of the time; write nothing."
    )
    var dryRun = false

    @Option(parsing: .unconditional, help: "BLAS threads in each process (parallelism normally comes from workers).")
    var threads: Int = 1

    @OptionGroup var faults: FaultOptions

    @OptionGroup var log: LogOptions

    /// `--dry-run`: what the job would do, from its first shard; nothing is written.
    func printDryRun(_ job: Job) throws {
        let d = try DryRun(job: job)
        let free = DryRun.freeBytes(at: out)
        let plan = job.plan
        print(
            "loom: dry run: \(job.spec.function.name.rawValue) over the \(job.spec.mode.rawValue) of \(job.inputs.space.axes.map(String.init).joined(separator: " × ")): \(d.examples) examples in \(d.shards) shard\(d.shards == 1 ? "" : "s") of \(plan.batchesPerShard) batch\(plan.batchesPerShard == 1 ? "" : "es") of \(job.spec.batchSize)"
        )
        let files = d.outputs.map { "\($0.file) \($0.shape)" }.joined(separator: ", ")
        let room =
            free.map { $0 >= d.resultBytes ? "fits: \(out) has \(DryRun.size($0)) free" : "does NOT fit: \(out) has \(DryRun.size($0)) free" }
            ?? "free space unknown"
        print("loom: result: \(files): \(DryRun.size(d.resultBytes)); \(room)")
        let perWorker = workers > 0 ? ", about \(DryRun.duration(d.estimatedSeconds(workers: workers))) on \(workers) workers" : ""
        print(
            "loom: time: the first shard took \(DryRun.duration(d.firstShardSeconds)) for \(d.firstShardExamples) examples here: about \(DryRun.duration(d.estimatedSeconds(workers: 0))) in one process\(perWorker)"
        )
    }

    func run() throws {
        log.apply()
        try reportingErrors {
            guard workers >= 0 else { throw ValidationError("--workers must be 0 or more") }
            try faults.check()
            if workers == 0 && faults.verify > 0 {
                throw ValidationError("--verify needs --workers 2 or more: in one process nothing is computed twice")
            }
            let (spec, seedNote) = try job.spec(out: overwrite ? nil : out)
            try ProcessSetup.prepareForCompute(threads: threads, kernels: spec.kernels)
            let metrics = dryRun ? nil : try faults.startMetrics()
            let loaded = try Job(spec: spec)
            if let seedNote, !dryRun { Console.log(level: "notice", seedNote) }
            for note in loaded.loadNotes { Console.log(level: "notice", note) }
            if dryRun { return try printDryRun(loaded) }
            let manifest: Manifest
            if workers == 0 {
                let progress = ProgressReporter(
                    totalShards: loaded.plan.shardCount, totalExamples: loaded.plan.examples,
                    style: quiet ? .quiet : .auto)
                var executor = LocalExecutor(job: loaded)
                executor.statusFile = StatusReporter.make(path: faults.statusFile, metrics: metrics)
                manifest = try executor.run(out: out, overwrite: overwrite, progress: progress)
            } else {
                do {
                    manifest = try LocalCluster.run(
                        job: loaded, workers: workers, out: out, overwrite: overwrite,
                        progress: quiet ? .quiet : .auto, logLevel: log.logLevel, logger: log.logger("loom.run"),
                        configure: {
                            faults.apply(to: &$0)
                            $0.metrics = metrics
                        })
                } catch  where LocalCluster.interruptedSignal != 0 {
                    throw Interruption.exit(out: out)
                }
            }
            if !quiet {
                let shapes = manifest.outputs.map { "\($0.file) \($0.shape)" }.joined(separator: ", ")
                let resumed = manifest.reliability?.resumedShards ?? 0
                if resumed == manifest.shards {
                    print(
                        "loom: \(out) already held the complete result (\(manifest.shards) shard\(manifest.shards == 1 ? "" : "s") from its journal; nothing computed): \(shapes)"
                    )
                } else {
                    print(
                        "loom: wrote \(manifest.examples) examples in \(manifest.shards) shard\(manifest.shards == 1 ? "" : "s") to \(out)"
                            + (resumed > 0 ? " (resumed: \(resumed) shards were already done)" : "") + ": \(shapes)")
                }
                if let v = manifest.verification { print("loom: \(v.sentence)") }
                // In process, the convergence of deep-lift-shap is known here (workers report it in their own warnings).
                let c = ConvergenceMonitor.shared.summary
                if workers == 0 && c.pairs > 0 {
                    print(
                        "loom: deep-lift-shap: \(c.pairs) example-reference pairs, largest convergence delta \(c.worst)"
                            + (c.batchesOver > 0 ? " (\(c.batchesOver) batches warned)" : ""))
                }
            }
        }
    }
}
