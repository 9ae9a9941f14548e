import FoundationEssentials
import LoomFunctions
import LoomSystem
import LoomTensor

#if canImport(Glibc)
    import Glibc
#endif

/// What a job would do, measured on its first shard: `loom run --dry-run`, and the free-space check
/// every run makes before it starts.
public struct DryRun: Sendable {
    /// The result files: name and full shape.
    public var outputs: [(file: String, shape: [Int])]
    /// Bytes of every result file together (float32 rows, without the small .npy headers).
    public var resultBytes: Int
    public var shards: Int
    public var examples: Int
    /// Seconds the first shard took in this process, and its examples.
    public var firstShardSeconds: Double
    public var firstShardExamples: Int

    /// Computes the first shard (and nothing else) to learn the outputs' shapes and the pace.
    public init(job: Job) throws {
        let plan = job.plan
        shards = plan.shardCount
        examples = plan.examples
        guard plan.shardCount > 0 else {
            outputs = []
            resultBytes = 0
            firstShardSeconds = 0
            firstShardExamples = 0
            return
        }
        let started = Date()
        let first = try LocalExecutor(job: job).compute(shard: 0)
        firstShardSeconds = Date().timeIntervalSince(started)
        firstShardExamples = plan.range(of: 0).count
        let axes = job.inputs.space.axes
        let leaves = first[0].output.leaves
        outputs = leaves.map { (ResultWriter.fileName(for: $0.index), axes + Array($0.tensor.shape.dropFirst())) }
        resultBytes = ResultWriter.bytes(ofShapes: outputs.map(\.shape))
    }

    /// Seconds the whole job would take on `workers` processes (in this one for 0) at the first shard's pace.
    public func estimatedSeconds(workers: Int) -> Double {
        guard firstShardExamples > 0 else { return 0 }
        return firstShardSeconds / Double(firstShardExamples) * Double(examples) / Double(max(workers, 1))
    }

    /// Free bytes on the filesystem that holds `path` (or its nearest existing parent); nil if unknown.
    public static func freeBytes(at path: String) -> Int? {
        var dir = path
        while !FileIO.exists(dir).exists && dir != "/" && !dir.isEmpty { dir = PathText.parent(dir) }
        var s = statvfs()
        guard statvfs(dir.isEmpty ? "." : dir, &s) == 0 else { return nil }
        let (free, overflow) = Int(s.f_bavail).multipliedReportingOverflow(by: Int(s.f_frsize))
        return overflow ? Int.max : free
    }

    /// "1.5 GB", "320 MB", "12 kB".
    public static func size(_ bytes: Int) -> String {
        let units = ["bytes", "kB", "MB", "GB", "TB", "PB"]
        var v = Double(bytes), u = 0
        while v >= 1000 && u < units.count - 1 { v /= 1000; u += 1 }
        return u == 0 ? "\(bytes) bytes" : String(cFormat: v < 10 ? "%.1f" : "%.0f", v) + " " + units[u]
    }

    /// "3 h 20 min", "4 min 10 s", "12 s".
    public static func duration(_ seconds: Double) -> String {
        let s = Int(seconds.rounded())
        if s >= 3600 { return "\(s / 3600) h \(s % 3600 / 60) min" }
        if s >= 60 { return "\(s / 60) min \(s % 60) s" }
        return seconds < 1 ? String(cFormat: "%.2f s", seconds) : "\(s) s"
    }
}
