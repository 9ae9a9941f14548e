import LoomCluster
import LoomSimulation
import Testing

@Suite("the deterministic simulation (real cores, simulated cluster)")
struct SimulationTests {
    /// Runs seeds and records each failure with the command that reproduces it.
    func run(seeds: ClosedRange<UInt64>, configure: (inout Simulation.Config) -> Void = { _ in }) throws {
        for seed in seeds {
            var config = Simulation.Config()
            config.seed = seed
            configure(&config)
            let report = try Simulation.run(config)
            #expect(report.ok, "\(report)\n  reproduce: scripts/simulate --seeds 1 --first-seed \(seed)")
        }
    }

    @Test("200 seeds of crashes, stalls, broken connections, duplicates and restarts: every invariant holds, every job finishes right")
    func faults() throws {
        try run(seeds: 1...200)
    }

    @Test("a poison shard fails the job, naming it, within the bound, whatever else goes wrong")
    func poison() throws {
        try run(seeds: 1001...1050) { $0.poisonShard = 123 }
    }

    @Test("the same seed gives the same run, event for event")
    func reproducible() throws {
        var config = Simulation.Config()
        config.seed = 77
        let a = try Simulation.run(config), b = try Simulation.run(config)
        #expect(a.events == b.events && a.messages == b.messages && a.seconds == b.seconds && a.faults == b.faults)
    }

    @Test("the checks catch a broken collector (acks before the journal) and a job that cannot finish")
    func catchesBugs() throws {
        // A world in which only the collector crashes: the real core passes, a broken one does not.
        var config = Simulation.Config()
        config.crashRate = 0
        config.stallRate = 0
        config.breakRate = 0
        config.coordinatorCrashes = 0
        config.collectorCrashes = 3
        config.seed = 5
        #expect(try Simulation.run(config).ok)
        config.ackBeforeJournal = true
        let broken = try Simulation.run(config)
        #expect(broken.violations.first?.contains("not in the journal") == true, "\(broken)")
        // A job that can never finish is reported, not passed: no workers at all.
        config.ackBeforeJournal = false
        config.workers = 0
        config.finishBound = 20
        let stuck = try Simulation.run(config)
        #expect(!stuck.ok && stuck.violations.first?.contains("not over") == true, "\(stuck)")
    }
}

@Suite("--verify in the simulation")
struct VerificationSimulationTests {
    /// Seed `seed` with worker 3 lying and every shard verified, run and checked to end right.
    ///
    /// Verification's state lives in the coordinator: a restarted coordinator does not know who
    /// wrote the shards it resumes (docs/security.md), so neither it nor the collector crashes.
    /// Workers still crash, stall and break.
    func runWithLiar(seed: UInt64) throws -> Simulation.Report {
        var config = Simulation.Config()
        config.seed = seed
        config.liar = 3
        config.settings.verify = 1
        config.coordinatorCrashes = 0
        config.collectorCrashes = 0
        let report = try Simulation.run(config)
        #expect(report.ok, "\(report)\n  reproduce: scripts/simulate --seeds 1 --first-seed \(seed) --liar 3 --verify 1")
        return report
    }

    @Test("a worker whose every result is one bit off, --verify 1: it is caught and quarantined, and every shard ends right")
    func liar() throws {
        for seed in UInt64(2001)...2040 {
            let report = try runWithLiar(seed: seed)
            // Only the liar is quarantined: each of its processes (a crash starts a new one, under a new name).
            let quarantined = report.verification?.quarantined ?? []
            #expect(
                !quarantined.isEmpty && quarantined.allSatisfy { $0 == "w3" || $0.hasPrefix("w3#") }, "seed \(seed): \(String(describing: report.verification))"
            )
        }
    }

    @Test("a worker cut off or stalled, not crashed, is not held against its shard: seeds 9 and 250 once failed the job as poison")
    func noFalsePoison() throws {
        // Before charges were withdrawn, three unrelated faults on the workers running one shard (a
        // crash, then a stall or a broken connection whose process came back) made it "poison".
        for seed: UInt64 in [9, 250] { _ = try runWithLiar(seed: seed) }
    }
}
