import Foundation
import LoomTensor

/// `--status-file PATH`: a job's figures as JSON, rewritten atomically every few seconds, for people
/// without Prometheus (and for scripts that watch a job).
public final class StatusFile {
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
        /// `--verify`, when on.
        public var verification: Manifest.VerificationRecord?
        /// Why the job failed.
        public var failure: String?
    }

    public let path: String
    let interval: Double
    private var last = Date.distantPast
    private let started = Date()

    public init(path: String, interval: Double = 2) {
        self.path = path
        self.interval = interval
    }

    /// Seconds since this status file was made (the job's start, near enough).
    public var elapsed: Double { Date().timeIntervalSince(started) }

    /// A status with the figures every run has; the caller adds the rest.
    public func status(state: String, job: String, shardsTotal: Int, shardsDone: Int, examplesTotal: Int, examplesDone: Int) -> Status {
        let elapsed = self.elapsed
        return Status(
            state: state, job: job, updatedAt: ISO8601DateFormatter().string(from: Date()), elapsedSeconds: (elapsed * 1000).rounded() / 1000,
            shardsTotal: shardsTotal, shardsDone: shardsDone, examplesTotal: examplesTotal, examplesDone: examplesDone,
            examplesPerSecond: elapsed > 0 ? (Double(examplesDone) / elapsed).rounded() : 0)
    }

    /// Writes `status` atomically, at most every `interval` seconds unless `force`. A file that
    /// cannot be written is skipped (the job matters more); the next write tries again.
    public func write(_ status: @autoclosure () -> Status, force: Bool = false) {
        let now = Date()
        guard force || now.timeIntervalSince(last) >= interval else { return }
        last = now
        let encoder = JSONEncoder()
        encoder.keyEncodingStrategy = .convertToSnakeCase
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        guard let data = try? encoder.encode(status()) else { return }
        try? FileIO.writeAtomically(Array(data) + [10], to: path)
    }
}
