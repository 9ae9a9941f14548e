import LoomFunctions
import LoomONNX

/// Everything that defines a job, as the user gave it: `loom run`'s job flags.
public struct JobSpec: Codable, Sendable, Equatable {
    /// Pairwise or product.
    public var mode: ProductMode
    /// The function and its options.
    public var function: FunctionSpec
    /// The `.onnx` file.
    public var modelPath: String
    /// The sequences: an (n, A, L) `.npy` file, or a FASTA file (see ``sequences``).
    public var xPath: String
    /// How a FASTA `xPath` is read (`--regions`, `--length`, `--summits`, `--ignore`); nil: every record is a row, N is ignored.
    public var sequences: SequenceOptions? = nil
    /// The extra model inputs, in model-input order.
    public var argPaths: [String]
    /// Examples per batch.
    public var batchSize: Int
    /// Whether a batch's repeated sequences are held, and their X-only work done, once (the default).
    public var shareRows: Bool = true
    /// Batches per shard; nil chooses from the model's cost (see ``ShardPlan/automaticBatchesPerShard(examples:batchSize:operationsPerExample:)``).
    public var shardBatches: Int? = nil
    /// The BLAS kernels every process of the job runs (`--kernels`, resolved; nil: OpenBLAS chooses, as before they were pinned).
    public var kernels: KernelSet? = nil

    public init(
        mode: ProductMode, function: FunctionSpec, modelPath: String, xPath: String, argPaths: [String], batchSize: Int,
        shareRows: Bool = true, shardBatches: Int? = nil
    ) {
        self.shareRows = shareRows
        self.shardBatches = shardBatches
        self.mode = mode
        self.function = function
        self.modelPath = modelPath
        self.xPath = xPath
        self.argPaths = argPaths
        self.batchSize = batchSize
    }
}

/// How X is read from a FASTA file: tangermeme's `extract_loci` options.
public struct SequenceOptions: Codable, Sendable, Equatable {
    /// A BED (or narrowPeak) file: X's rows are windows of the FASTA centred on its regions. Nil: each record is a row.
    public var regions: String?
    /// The window, in bases (required with `regions`; without, each record's centred window).
    public var length: Int?
    /// Centre on narrowPeak summits (column 10) rather than on the middle of each region.
    public var summits: Bool
    /// The characters encoded as all zeros (tangermeme's `ignore`; default N).
    public var ignore: String

    public init(regions: String? = nil, length: Int? = nil, summits: Bool = false, ignore: String = "N") {
        self.regions = regions
        self.length = length
        self.summits = summits
        self.ignore = ignore
    }
}
