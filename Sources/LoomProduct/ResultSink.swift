/// Where a job's results go, for the in-process executor and the collector alike: it claims
/// `--out` (refusing another job's results unless told to overwrite), resumes from the journal,
/// writes shards' rows, makes them durable and journals them, and publishes the manifest.
public final class ResultSink {
    public let directory: String
    public let writer: ResultWriter
    public let journal: Journal

    /// Claims `directory` for the job and opens its journal and result files; a journal left by
    /// an earlier run of the same job is resumed (``resumed``).
    public init(directory: String, jobID: String, spec: JobSpec, axes: [Int], overwrite: Bool) throws {
        try OutputDirectory.claim(directory, jobID: jobID, spec: spec, overwrite: overwrite)
        let journal = try Journal(directory: directory, jobID: jobID)
        let writer = ResultWriter(directory: directory, axes: axes)
        if !journal.resumed.isEmpty, try !writer.reopen() {
            throw OutputDirectory.RefusedError(path: directory, reason: "has a journal but no layout.json; pass --overwrite to start again")
        }
        self.directory = directory
        self.writer = writer
        self.journal = journal
    }

    /// The shards an earlier run journaled: complete, not to be computed again.
    public var resumed: [Int] { journal.resumed }

    /// Makes the rows written so far durable, then journals these shards (in that order, so a
    /// journaled shard is always complete in the files).
    public func commit(_ shards: [Int]) throws {
        guard !shards.isEmpty else { return }
        try writer.sync()
        try journal.record(shards)
    }

    /// Flushes the result files and publishes the manifest that `describe` builds from them.
    @discardableResult
    public func publish(_ describe: ([Manifest.Output]) throws -> Manifest) throws -> Manifest {
        let manifest = try describe(try writer.finish())
        try OutputDirectory.publish(manifest, in: directory)
        return manifest
    }
}
