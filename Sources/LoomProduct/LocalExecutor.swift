import Foundation
import LoomFunctions
import LoomTensor

/// Runs a job in this process, shard by shard, writing results in place: `loom run --workers 0`.
public struct LocalExecutor {
    public let job: Job
    /// Whether a batch's repeated sequences are held (and their X-only work done) once.
    public let shareRows: Bool

    public init(job: Job) {
        self.job = job
        self.shareRows = job.spec.shareRows
    }

    /// Computes one shard's outputs.
    public func compute(shard: Int) throws -> (range: Range<Int>, output: OutputTree) {
        let range = job.plan.range(of: shard)
        let batch = job.inputs.batch(for: range, shareRows: shareRows)
        return (range, try job.function.apply(model: job.model, batch: batch))
    }

    /// Runs every shard into `out` and publishes the manifest.
    ///
    /// The first shard is computed before the folder is touched, so a model that
    /// fails on real input fails without leaving files behind.
    public func run(out: String, overwrite: Bool, progress: ProgressReporter?) throws -> Manifest {
        let started = Date()
        let plan = job.plan
        let first = plan.shardCount > 0 ? try compute(shard: 0) : nil
        try OutputDirectory.claim(out, jobID: job.id, spec: job.spec, overwrite: overwrite)
        let writer = ResultWriter(directory: out, axes: job.inputs.space.axes)
        var examplesDone = 0
        if let first {
            try writer.write(first.output, at: first.range.lowerBound)
            examplesDone += first.range.count
            progress?.update(shardsDone: 1, examplesDone: examplesDone)
        }
        for shard in 1..<max(plan.shardCount, 1) {
            let (range, output) = try compute(shard: shard)
            try writer.write(output, at: range.lowerBound)
            examplesDone += range.count
            progress?.update(shardsDone: shard + 1, examplesDone: examplesDone)
        }
        progress?.finish(shardsDone: plan.shardCount, examplesDone: examplesDone)
        let outputs = try writer.finish()
        let manifest = Manifest(
            outputs: outputs, loomVersion: LoomVersion.string, jobId: job.id, mode: job.spec.mode,
            function: job.spec.function,
            model: .init(path: job.spec.modelPath, sha256: job.model.file.sha256, bytes: job.model.file.byteCount),
            inputs: job.inputDescriptions, batchSize: plan.batchSize, examples: plan.examples,
            shards: plan.shardCount, axes: job.inputs.space.axes, workers: 0,
            elapsedSeconds: Date().timeIntervalSince(started), completedAt: isoNowString())
        try OutputDirectory.publish(manifest, in: out)
        return manifest
    }
}
