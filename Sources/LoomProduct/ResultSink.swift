/// Where a job's results go, for the in-process executor and the collector alike: it claims
/// `--out` (refusing another job's results unless told to overwrite), resumes from the journal,
/// writes shards' rows, makes them durable and journals them, and publishes the manifest.
public final class ResultSink {
    public let directory: String
    public let writer: ResultWriter
    public let journal: Journal
    let jobID: String
    let plan: ShardPlan
    /// The shards an earlier run journaled whose rows check out: complete, not to be computed again.
    public let resumed: [Int]
    /// Journaled shards whose rows did not match their digest (corruption, a torn write): computed again.
    public let rejected: [Int]

    /// Claims `directory` for the job and opens its journal and result files; the shards a journal
    /// left by an earlier run of the same job holds are read back and checked (``resumed``,
    /// ``rejected``).
    public init(directory: String, jobID: String, spec: JobSpec, plan: ShardPlan, axes: [Int], overwrite: Bool) throws {
        try OutputDirectory.claim(directory, jobID: jobID, spec: spec, overwrite: overwrite)
        let journal = try Journal(directory: directory, jobID: jobID)
        let writer = ResultWriter(directory: directory, axes: axes)
        if !journal.found.isEmpty, try !writer.reopen() {
            throw OutputDirectory.RefusedError(path: directory, reason: "has a journal but no layout.json; pass --overwrite to start again")
        }
        var good: [Int] = [], bad: [Int] = []
        for (shard, digest) in journal.found {
            guard shard >= 0 && shard < plan.shardCount else { bad.append(shard); continue }
            if (try? writer.digest(rows: plan.range(of: shard), job: jobID)) == digest { good.append(shard) } else { bad.append(shard) }
        }
        journal.forget(bad)
        self.directory = directory
        self.writer = writer
        self.journal = journal
        self.jobID = jobID
        self.plan = plan
        resumed = good
        rejected = bad
    }

    /// Makes the rows written so far durable, then journals these shards with the digests of their
    /// rows as they are in the files (in that order, so a journaled shard is always complete).
    public func commit(_ shards: [Int]) throws {
        guard !shards.isEmpty else { return }
        try writer.sync()
        try journal.record(try shards.map { ($0, try writer.digest(rows: plan.range(of: $0), job: jobID)) })
    }

    /// Forgets journaled shards, durably (their rows came from a quarantined worker): they are
    /// written and journaled again.
    public func revoke(_ shards: [Int]) throws { try journal.revoke(shards) }

    /// Flushes the result files and publishes the manifest that `describe` builds from them.
    @discardableResult
    public func publish(_ describe: ([Manifest.Output]) throws -> Manifest) throws -> Manifest {
        let manifest = try describe(try writer.finish())
        try OutputDirectory.publish(manifest, in: directory)
        return manifest
    }
}
