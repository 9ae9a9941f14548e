import ArgumentParser
import Foundation
import LoomSimulation

/// Runs the deterministic simulation over many seeds, or one seed to reproduce a failure.
@main
struct LoomSimulate: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "loom-simulate",
        abstract: "Drive Loom's real coordinator and collector cores through a seeded, simulated cluster with faults.")

    @Option(help: "Seeds to run.") var seeds = 200
    @Option(help: "The first seed (a failure prints the seed that reproduces it).") var firstSeed: UInt64 = 1
    @Option(help: "Simulated workers.") var workers = 20
    @Option(help: "Shards in the job.") var shards = 400
    @Option(help: "Credit each worker grants at the start.") var credit = 2
    @Option(help: "Mean simulated seconds per shard.") var shardSeconds = Simulation.Config().shardSeconds
    @Flag(help: "No faults: measure the cores' cost per shard and per heartbeat.") var noFaults = false
    @Flag(help: "A poison shard (the middle one) that crashes every worker.") var poison = false
    @Flag(help: "Print one line per seed.") var verbose = false
    @Option(help: "The fraction of shards computed twice and compared (the coordinator's --verify).") var verify = 0.0
    @Option(help: "A worker (its number) whose every result is one bit off. With --verify, also: no coordinator or collector crashes.")
    var liar: Int?

    /// Every flag but the seeds, as a command line that reproduces one seed.
    var settingsFlags: String {
        var flags = "--workers \(workers) --shards \(shards) --credit \(credit) --shard-seconds \(shardSeconds)"
        if noFaults { flags += " --no-faults" }
        if poison { flags += " --poison" }
        if verify > 0 { flags += " --verify \(verify)" }
        if let liar { flags += " --liar \(liar)" }
        return flags
    }

    func run() throws {
        var failures = 0
        var coreSeconds = 0.0, heartbeatSeconds = 0.0, rounds = 0, simulated = 0.0
        let clock = ContinuousClock()
        let started = clock.now
        for seed in firstSeed..<(firstSeed + UInt64(seeds)) {
            var config = Simulation.Config()
            config.seed = seed
            config.workers = workers
            config.shards = shards
            config.credit = credit
            config.shardSeconds = shardSeconds
            config.faults = !noFaults
            if poison { config.poisonShard = shards / 2 }
            config.settings.verify = verify
            config.liar = liar
            if liar != nil && verify > 0 {
                // Verification's state lives in the coordinator (docs/security.md).
                config.coordinatorCrashes = 0
                config.collectorCrashes = 0
            }
            let report = try Simulation.run(config)
            coreSeconds += report.coordinatorCoreSeconds
            heartbeatSeconds += report.heartbeatSeconds
            rounds += report.heartbeatRounds
            simulated += report.seconds
            if report.outcome == nil || !report.ok {
                failures += 1
                print("FAILED \(report)")
                print("  reproduce: loom-simulate --seeds 1 --first-seed \(seed) \(settingsFlags)")
            } else if verbose {
                print(report)
            }
        }
        let wall = clock.now - started
        let n = Double(seeds)
        print(
            "\(seeds) seeds, \(workers) workers, \(shards) shards\(noFaults ? ", no faults" : poison ? ", poison shard" : ", faults"): \(seeds - failures) passed, \(failures) failed, in \(wall)"
        )
        // Per shard: the core's time outside heartbeat rounds (messages, dispatch, acks), over the shards.
        print(
            String(
                format: "coordinator core: %.2f µs per shard, %.1f µs per heartbeat round (%d rounds, %.2f µs per worker); %.1f simulated s per seed",
                (coreSeconds - heartbeatSeconds) / n / Double(shards) * 1e6, rounds > 0 ? heartbeatSeconds / Double(rounds) * 1e6 : 0, rounds,
                rounds > 0 ? heartbeatSeconds / Double(rounds) / Double(max(workers, 1)) * 1e6 : 0, simulated / n))
        if failures > 0 { throw ExitCode(1) }
    }
}
