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
    /// The sequences, (n, A, L) `.npy`.
    public var xPath: String
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
