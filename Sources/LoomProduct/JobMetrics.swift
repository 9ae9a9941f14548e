import CoreMetrics

/// A job's figures as swift-metrics gauges and counters (`--metrics`; the `loom` binary serves them in Prometheus's text format).
///
/// They are recorded from the same ``StatusReporter/Status`` snapshots as `--status-file`, so
/// the two never disagree. Cumulative figures are counters (`_total`: use `rate()`), current
/// ones gauges. The names are listed in docs/reliability.md ("Watching a job").
public final class JobMetrics: @unchecked Sendable {
    let shards: Gauge
    let shardsDone: Gauge
    let shardsInFlight: Gauge
    let shardsQueued: Gauge
    let shardsResumed: Gauge
    let examples: Gauge
    let examplesDone: Counter
    let examplesPerSecond: Gauge
    let workersAlive: Gauge
    let workersLost: Counter
    let leasesExpired: Counter
    let shardsReissued: Counter
    let duplicatesDropped: Counter
    let bytesToWorkers: Counter
    let bytesToCollector: Counter
    let verified: Counter
    let mismatches: Counter
    let unverified: Gauge
    let quarantined: Gauge
    let state: [String: Gauge]
    /// The last values of the cumulative figures, so that counters grow by the difference.
    private var last: [String: Int] = [:]

    public init(factory: any MetricsFactory) {
        func gauge(_ name: String, _ dimensions: [(String, String)] = []) -> Gauge { Gauge(label: "loom_" + name, dimensions: dimensions, factory: factory) }
        func counter(_ name: String, _ dimensions: [(String, String)] = []) -> Counter {
            Counter(label: "loom_" + name, dimensions: dimensions, factory: factory)
        }
        shards = gauge("job_shards")
        shardsDone = gauge("shards_done")
        shardsInFlight = gauge("shards_in_flight")
        shardsQueued = gauge("shards_queued")
        shardsResumed = gauge("shards_resumed")
        examples = gauge("job_examples")
        examplesDone = counter("examples_total")
        examplesPerSecond = gauge("examples_per_second")
        workersAlive = gauge("workers_alive")
        workersLost = counter("workers_lost_total")
        leasesExpired = counter("leases_expired_total")
        shardsReissued = counter("shards_reissued_total")
        duplicatesDropped = counter("duplicates_dropped_total")
        bytesToWorkers = counter("wire_bytes_total", [("direction", "to_workers")])
        bytesToCollector = counter("wire_bytes_total", [("direction", "to_collector")])
        verified = counter("verification_verified_total")
        mismatches = counter("verification_mismatches_total")
        unverified = gauge("verification_unverified")
        quarantined = gauge("workers_quarantined")
        state = Dictionary(uniqueKeysWithValues: ["running", "done", "failed"].map { ($0, gauge("job_state", [("state", $0)])) })
    }

    /// Records a snapshot.
    func record(_ s: StatusReporter.Status) {
        shards.record(s.shardsTotal)
        shardsDone.record(s.shardsDone)
        let inFlight = s.shardsInFlight ?? 0
        shardsInFlight.record(inFlight)
        shardsQueued.record(max(0, s.shardsTotal - s.shardsDone - inFlight))
        shardsResumed.record(s.shardsResumed ?? 0)
        examples.record(s.examplesTotal)
        examplesPerSecond.record(s.examplesPerSecond)
        workersAlive.record(s.workersAlive ?? 0)
        grow(examplesDone, "examples", s.examplesDone)
        grow(workersLost, "lost", s.workersLost)
        grow(leasesExpired, "leases", s.leasesExpired)
        grow(shardsReissued, "reissued", s.shardsReissued)
        grow(duplicatesDropped, "duplicates", s.duplicatesDropped)
        grow(bytesToWorkers, "toWorkers", s.bytesToWorkers)
        grow(bytesToCollector, "toCollector", s.bytesToCollector)
        grow(verified, "verified", s.verification?.verified)
        grow(mismatches, "mismatches", s.verification?.mismatches)
        unverified.record(s.verification?.unverified ?? 0)
        quarantined.record(s.verification?.quarantined.count ?? 0)
        for (name, g) in state { g.record(name == s.state ? 1 : 0) }
    }

    private func grow(_ counter: Counter, _ key: String, _ value: Int?) {
        guard let value else { return }
        let delta = value - (last[key] ?? 0)
        if delta > 0 {
            counter.increment(by: Int64(delta))
            last[key] = value
        }
    }
}
