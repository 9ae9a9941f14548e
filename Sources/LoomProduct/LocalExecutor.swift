import FoundationEssentials
import LoomFunctions
import LoomTensor

/// Runs a job in this process, shard by shard, writing results in place: `loom run --workers 0`.
///
/// Completed shards are journaled (see ``Journal``) about once a second, so running the same
/// job again into the same `--out` computes only what is missing.
public struct LocalExecutor {
    public let job: Job
    /// Whether a batch's repeated sequences are held (and their X-only work done) once.
    public let shareRows: Bool
    /// Seconds between journal commits.
    public var commitInterval: Double = 1
    /// `--status-file`: the job's figures as JSON, every 2 s and at the end.
    public var statusFile: StatusReporter?

    public init(job: Job) {
        self.job = job
        self.shareRows = job.spec.shareRows
    }

    /// Computes one shard's outputs, batch by batch.
    public func compute(shard: Int) throws -> [(range: Range<Int>, output: OutputTree)] {
        try job.plan.batches(of: shard).map { range in
            (range, try job.function.apply(model: job.model, batch: job.inputs.batch(for: range, shareRows: shareRows)))
        }
    }

    /// Runs every shard not yet complete into `out` and publishes the manifest.
    ///
    /// A fresh job computes its first shard before the folder is touched, so a model that
    /// fails on real input fails without leaving files behind.
    public func run(out: String, overwrite: Bool, progress: ProgressReporter?) throws -> Manifest {
        let started = Date()
        let plan = job.plan
        let resuming = !overwrite && FileIO.exists(out + "/" + Journal.fileName).exists && (try? OutputDirectory.readClaim(out))?.jobId == job.id
        let first = !resuming && plan.shardCount > 0 ? try compute(shard: 0) : nil
        let sink = try ResultSink(directory: out, jobID: job.id, spec: job.spec, plan: plan, axes: job.inputs.space.axes, overwrite: overwrite)
        if !sink.rejected.isEmpty {
            Console.log(
                level: "warning",
                "\(sink.rejected.count) journaled shard(s) failed their checksum in \(out) (from \(plan.describe(sink.rejected[0]))); computing them again")
        }
        if sink.journal.discardedLegacy {
            Console.log(level: "notice", "\(out) holds a journal from an older Loom, without checksums; starting the job over")
        }
        var done = [Bool](repeating: false, count: plan.shardCount)
        if !sink.resumed.isEmpty {
            for s in sink.resumed where s < plan.shardCount { done[s] = true }
            Console.log(level: "notice", "resuming: \(sink.resumed.count) of \(plan.shardCount) shards are already complete in \(out)")
        }
        var examplesDone = 0
        var shardsDone = 0
        for s in 0..<plan.shardCount where done[s] { examplesDone += plan.range(of: s).count; shardsDone += 1 }
        var pending: [Int] = []
        var lastCommit = Date()
        func status(_ state: String, failure: String? = nil) -> StatusReporter.Status {
            var s = statusFile!.status(
                state: state, job: job.id, shardsTotal: plan.shardCount, shardsDone: shardsDone, examplesTotal: plan.examples,
                examplesDone: examplesDone)
            s.shardsResumed = sink.resumed.count
            s.failure = failure
            return s
        }
        var finished = false
        defer { if !finished, statusFile != nil { statusFile?.write(status("failed", failure: "stopped before the end"), force: true) } }
        func commit() throws {
            try sink.commit(pending)
            pending.removeAll()
            lastCommit = Date()
        }
        for shard in 0..<plan.shardCount where !done[shard] {
            let batches = shard == 0 && first != nil ? first! : try compute(shard: shard)
            try sink.writer.write(consecutive: batches)
            examplesDone += batches.reduce(0) { $0 + $1.range.count }
            pending.append(shard)
            shardsDone += 1
            if Date().timeIntervalSince(lastCommit) >= commitInterval { try commit() }
            progress?.update(shardsDone: shardsDone, examplesDone: examplesDone)
            if statusFile != nil { statusFile?.write(status("running")) }
        }
        try commit()
        progress?.finish(shardsDone: plan.shardCount, examplesDone: examplesDone)
        defer { if finished, statusFile != nil { statusFile?.write(status("done"), force: true) } }
        let manifest = try sink.publish { outputs in
            var manifest = Manifest.finished(
                jobId: job.id, spec: job.spec, model: .init(path: job.spec.modelPath, sha256: job.model.file.sha256, bytes: job.model.file.byteCount),
                inputs: job.inputDescriptions, plan: plan, axes: job.inputs.space.axes, outputs: outputs, workers: 0,
                elapsed: Date().timeIntervalSince(started), sequences: job.sequences)
            manifest.reliability = .init(resumedShards: sink.resumed.count)
            return manifest
        }
        finished = true
        return manifest
    }
}
