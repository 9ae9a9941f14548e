import FoundationEssentials
import LoomTensor

/// A job's figures, published as they change: `--status-file PATH` (JSON, rewritten atomically every
/// few seconds, for people without Prometheus and for scripts that watch a job) and `--metrics`
/// (``JobMetrics``, which a Prometheus endpoint serves).
public final class StatusReporter {
    /// The figures, as the file holds them (snake_case keys).
    public struct Status: Codable, Sendable, Equatable {
        /// "running", "done" or "failed".
        public var state: String
        public var job: String
        public var updatedAt: String
        public var elapsedSeconds: Double
        public var shardsTotal: Int
        public var shardsDone: Int
        public var examplesTotal: Int
        public var examplesDone: Int
        public var examplesPerSecond: Double
        /// The distributed runtime's figures (absent in one process).
        public var shardsInFlight: Int?
        public var workersAlive: Int?
        public var workersLost: Int?
        public var leasesExpired: Int?
        public var shardsReissued: Int?
        public var bytesToWorkers: Int?
        /// Message bytes of the results written by the collector.
        public var bytesToCollector: Int?
        /// Results that arrived for shards already written, and were dropped.
        public var duplicatesDropped: Int?
        /// Shards found complete in `--out`'s journal when the job started.
        public var shardsResumed: Int?
        /// `--verify`, when on.
        public var verification: Manifest.VerificationRecord?
        /// Why the job failed.
        public var failure: String?
    }

    /// The status file, if any.
    public let path: String?
    /// The metrics, if any.
    public let metrics: JobMetrics?
    let interval: Double
    let metricsInterval: Double
    private var last = Date.distantPast
    private var lastMetrics = Date.distantPast
    private let started = Date()

    public init(path: String?, metrics: JobMetrics? = nil, interval: Double = 2, metricsInterval: Double = 0.5) {
        self.path = path
        self.metrics = metrics
        self.interval = interval
        self.metricsInterval = metricsInterval
    }

    /// Nil when there is nowhere to publish.
    public static func make(path: String?, metrics: JobMetrics?) -> StatusReporter? {
        path == nil && metrics == nil ? nil : StatusReporter(path: path, metrics: metrics)
    }

    /// Seconds since this status file was made (the job's start, near enough).
    public var elapsed: Double { Date().timeIntervalSince(started) }

    /// A status with the figures every run has; the caller adds the rest.
    public func status(state: String, job: String, shardsTotal: Int, shardsDone: Int, examplesTotal: Int, examplesDone: Int) -> Status {
        let elapsed = self.elapsed
        return Status(
            state: state, job: job, updatedAt: isoNowString(), elapsedSeconds: (elapsed * 1000).rounded() / 1000,
            shardsTotal: shardsTotal, shardsDone: shardsDone, examplesTotal: examplesTotal, examplesDone: examplesDone,
            examplesPerSecond: elapsed > 0 ? (Double(examplesDone) / elapsed).rounded() : 0)
    }

    /// Publishes `status`: the file at most every `interval` seconds, the metrics every
    /// `metricsInterval`, both at once if `force`. A file that cannot be written is skipped (the
    /// job matters more); the next write tries again.
    public func write(_ status: @autoclosure () -> Status, force: Bool = false) {
        let now = Date()
        let fileDue = path != nil && (force || now.timeIntervalSince(last) >= interval)
        let metricsDue = metrics != nil && (force || now.timeIntervalSince(lastMetrics) >= metricsInterval)
        guard fileDue || metricsDue else { return }
        let s = status()
        if metricsDue {
            lastMetrics = now
            metrics?.record(s)
        }
        guard fileDue, let path else { return }
        last = now
        let encoder = JSONEncoder()
        encoder.keyEncodingStrategy = .convertToSnakeCase
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        guard let data = try? encoder.encode(s) else { return }
        try? FileIO.writeAtomically(Array(data) + [10], to: path)
    }
}
