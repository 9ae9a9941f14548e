import ArgumentParser
import FoundationEssentials
import LoomProduct
import LoomTensor

/// `loom verify DIR`: checks a finished result against its manifest and journal.
struct Verify: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "verify",
        abstract: "Check a results folder: every file's sha256 against manifest.json, every shard's rows against the journal's checksums.")

    @Argument(help: "A results folder (--out of a finished job).")
    var path: String

    func run() throws {
        try reportingErrors {
            let manifestPath = path + "/" + OutputDirectory.manifestFile
            guard FileIO.exists(manifestPath).exists else {
                throw ValidationError("\(path) has no manifest.json: the job did not finish, or this is not a results folder")
            }
            let manifest = try Manifest.read(path: manifestPath)
            var problems: [String] = []
            for output in manifest.outputs {
                let file = path + "/" + output.file
                guard FileIO.exists(file).exists else { problems.append("\(output.file) is missing"); continue }
                guard let expected = output.sha256 else {
                    problems.append("\(output.file): the manifest records no sha256 (written by an older Loom)"); continue
                }
                if try SHA256.hex(ofFile: file) != expected {
                    problems.append("\(output.file) does not match its sha256 in manifest.json: it changed after the job")
                }
            }
            let plan = try ShardPlan(examples: manifest.examples, batchSize: manifest.batchSize, batchesPerShard: manifest.batchesPerShard ?? 1)
            if let records = Journal.records(directory: path, jobID: manifest.jobId) {
                var last: [Int: [UInt8]] = [:]
                for (s, d) in records { last[s] = d }
                let missing = (0..<plan.shardCount).filter { last[$0] == nil }
                if !missing.isEmpty { problems.append("the journal lacks \(missing.count) of \(plan.shardCount) shards (first: \(plan.describe(missing[0])))") }
                let writer = ResultWriter(directory: path, axes: manifest.axes)
                if try writer.reopen(published: true) {
                    let bad = last.keys.sorted().filter { s in
                        s >= plan.shardCount || (try? writer.digest(rows: plan.range(of: s), job: manifest.jobId)) != last[s]
                    }
                    if !bad.isEmpty { problems.append("\(bad.count) shard(s) do not match their journal checksum (first: \(plan.describe(bad[0])))") }
                } else {
                    problems.append("layout.json is missing: the shards' rows cannot be checked")
                }
            } else {
                problems.append("journal.loom is missing or belongs to another job or Loom version: the shards cannot be checked")
            }
            guard problems.isEmpty else {
                throw ValidationError("\(path): " + problems.joined(separator: "; "))
            }
            print("loom: \(path): \(manifest.outputs.count) file(s) match manifest.json; \(plan.shardCount) shard(s) match the journal")
        }
    }
}
