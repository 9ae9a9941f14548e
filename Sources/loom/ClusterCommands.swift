import ArgumentParser
import FoundationEssentials
import LoomCluster
import LoomONNX
import LoomProduct
import LoomTensor
import ZeroMQ

#if canImport(Glibc)
    import Glibc
#endif

/// `loom coordinator`: serve one job to workers over ZeroMQ.
struct CoordinatorCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "coordinator", _superCommandName: "loom",
        abstract: "Serve one job: hand shards to workers that connect; exit 0 once the result and its manifest are written.")

    @Option(help: "Where workers connect, e.g. tcp://*:5555 (or $LOOM_COORDINATOR).")
    var bind: String?

    @OptionGroup var job: JobOptions

    @Option(help: "A collector running elsewhere (or $LOOM_COLLECTOR); by default one runs in this process.")
    var collector: String?

    @Option(
        help: ArgumentHelp(
            "The host or address workers should use to reach this host's endpoints (default: each worker uses the host it reached the coordinator by).",
            valueName: "host"))
    var advertise: String?

    @Option(
        help: ArgumentHelp(
            "Where the collector in this process binds, e.g. tcp://*:5556 (default: a free port beside --bind), for firewalls and Kubernetes Services.",
            valueName: "endpoint"))
    var collectorBind: String?

    @Option(
        help: ArgumentHelp(
            "Once bound, write the endpoint workers should use here (an address, never a name), atomically; for --bind tcp://*:0 and cluster launchers.",
            valueName: "path"))
    var endpointFile: String?

    @Option(help: "The results folder (for the collector in this process).")
    var out: String?

    @Flag(help: "Replace the results of a different job in --out.")
    var overwrite = false

    @Flag(help: "No progress output.")
    var quiet = false

    @OptionGroup var faults: FaultOptions

    @OptionGroup var keys: KeyOptions

    @OptionGroup var log: LogOptions

    func run() throws {
        log.apply()
        try reportingErrors {
            try faults.check()
            // The job's flags first (reading job.json to resume), then OpenBLAS (for the model's cost
            // estimate) with the job's kernels and one thread, while this process has only one
            // thread: loading sets OPENBLAS_NUM_THREADS and OPENBLAS_CORETYPE for a moment, and
            // setenv is not safe beside threads that read the environment.
            let (spec, seedNote) = try job.spec(out: overwrite ? nil : out)
            try BLAS.load(threads: 1, kernels: spec.kernels)
            let metrics = try faults.startMetrics()
            let bindEndpoint = try endpoint(bind, env: "LOOM_COORDINATOR", what: "--bind")
            let collectorEndpoint = collector ?? ProcessInfo.processInfo.environment["LOOM_COLLECTOR"].flatMap { $0.isEmpty ? nil : $0 }
            guard collectorEndpoint != nil || out != nil else { throw ValidationError("pass --out (results written here) or --collector") }
            if let collectorEndpoint { try Endpoint.checkResolvable(collectorEndpoint, flag: "--collector") }
            let context = try Context()
            // Delivers the lingering last words (`end` to workers) before the process exits.
            defer { context.terminate(waitingAtMost: 2) }
            let logger = log.logger("loom.coordinator")
            let security = try keys.server(
                context, endpoints: [bindEndpoint] + (collectorEndpoint.map { [$0] } ?? []) + (collectorBind.map { [$0] } ?? []),
                role: "coordinator", logger: logger)
            defer { security.zap?.stop() }
            if security.keys != nil, collectorEndpoint != nil, security.collectorKey == nil {
                throw ValidationError("--collector with --key needs --collector-key: that collector's public key")
            }
            // Bound first: waiting workers connect while the job's inputs load and hash.
            let listening = try Coordinator.listen(context: context, bind: bindEndpoint, security: security)
            defer { listening.close() }
            if let endpointFile {
                try EndpointFile.write(try EndpointFile.contents(bound: listening.lastEndpoint, advertise: advertise), to: endpointFile)
            }
            #if DEBUG
                // Test-only: a job that takes this long to load (`LOOM_TEST_LOAD_DELAY_MS`), as a large one does.
                if let ms = ProcessInfo.processInfo.environment["LOOM_TEST_LOAD_DELAY_MS"].flatMap(UInt32.init) { usleep(ms * 1000) }
            #endif
            let loaded = try Job(spec: spec)
            if let seedNote { Console.log(level: "notice", seedNote) }
            for note in loaded.loadNotes { Console.log(level: "notice", note) }
            var options = Coordinator.Options(bind: bindEndpoint, collector: collectorEndpoint, out: out)
            options.advertise = advertise
            options.collectorBind = collectorBind
            options.statusFile = faults.statusFile
            options.overwrite = overwrite
            options.progress = quiet ? .quiet : .auto
            options.security = security
            faults.apply(to: &options)
            options.metrics = metrics
            let c = Coordinator(job: loaded, options: options, context: context, listening: listening, logger: logger)
            // SIGINT or SIGTERM (Ctrl-C, Slurm before walltime): the workers are told the job is over,
            // the journal keeps what is done, and the exit status says "resume me" (75).
            Interruption.install()
            c.tick = {
                AllowReload.serve()
                return Interruption.caught != 0 ? "interrupted by \(Interruption.name(Interruption.caught))" : nil
            }
            let workers: Int
            do { workers = try c.run() } catch  where Interruption.caught != 0 { throw Interruption.exit(out: out) }
            if !quiet {
                // The result files, as loom run names them (the collector is elsewhere: its --out holds them).
                let manifest = out.flatMap { try? Manifest.read(path: $0 + "/" + OutputDirectory.manifestFile) }
                let files = manifest.map { m in ": " + m.outputs.map { "\($0.file) \($0.shape)" }.joined(separator: ", ") } ?? ""
                print(
                    "loom: job \(loaded.id.prefix(12)) done: \(loaded.plan.shardCount) shards by \(workers) worker(s)\(out.map { " in \($0)" } ?? "")\(files)")
                if let v = manifest?.verification { print("loom: \(v.sentence)") }
            }
        }
    }
}

/// `loom worker`: compute shards for a coordinator.
struct WorkerCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "worker", _superCommandName: "loom",
        abstract: "Join a coordinator and compute shards of its job; the job, the model and the inputs come from the coordinator.")

    @Option(help: "The coordinator, e.g. tcp://host:5555 (or $LOOM_COORDINATOR).")
    var connect: String?

    @Option(help: ArgumentHelp("Wait for this file (written by `loom coordinator --endpoint-file`) and connect to the endpoint it holds.", valueName: "path"))
    var endpointFile: String?

    @Option(
        parsing: .unconditional,
        help: ArgumentHelp("Exit non-zero after this many seconds without a coordinator (default: wait as long as it takes).", valueName: "seconds"))
    var maxWait: Double?

    @Flag(help: "Stay for the next job of a coordinator at the same endpoint.")
    var keepAlive = false

    @Option(parsing: .unconditional, help: "Shards to hold at once (one computing, the rest arriving).")
    var credit: Int = 2

    @Option(parsing: .unconditional, help: "The most shards to hold when shards take under a few milliseconds each.")
    var maxCredit: Int = 64

    @Option(parsing: .unconditional, help: .hidden)
    var parentPid: Int32?

    @Option(parsing: .unconditional, help: "Seconds between heartbeats to the coordinator.")
    var heartbeat: Double = 1

    @Option(parsing: .unconditional, help: "Missed heartbeats after which a coordinator that answered is taken as lost (then: reconnect after 1 s).")
    var liveness: Int = 3

    @OptionGroup var keys: KeyOptions

    @OptionGroup var log: LogOptions

    func run() throws {
        log.apply()
        try reportingErrors {
            try requirePositive(heartbeat, "--heartbeat")
            try requireAtLeastOne(liveness, "--liveness")
            try requireAtLeastOne(credit, "--credit")
            try requireAtLeastOne(maxCredit, "--max-credit")
            if let maxWait { try requirePositive(maxWait, "--max-wait") }
            guard connect == nil || endpointFile == nil else { throw ValidationError("pass --connect or --endpoint-file, not both") }
            try ProcessSetup.prepareWorker()
            let logger = log.logger("loom.worker")
            let target: String
            if let endpointFile {
                let found = try EndpointFile.wait(for: endpointFile, maxWait: maxWait) { waited in
                    logger.warning("no endpoint file at \(endpointFile) after \(Int(waited)) s; still waiting")
                }
                guard let found else {
                    throw ClusterError.noEndpointFile(path: endpointFile, maxWait: maxWait)
                }
                target = found
            } else {
                target = try endpoint(connect, env: "LOOM_COORDINATOR", what: "--connect")
            }
            try Endpoint.checkResolvable(target, flag: endpointFile == nil ? "--connect" : "--endpoint-file")
            let security = try keys.worker(endpoint: target, logger: logger)
            let context = try Context()
            defer { context.terminate(waitingAtMost: 2) }
            let w = Worker(
                context: context, coordinator: target, keepAlive: keepAlive, credit: credit, maxCredit: maxCredit,
                logger: logger)
            w.parentPID = parentPid
            w.security = security
            w.maxWait = maxWait
            // SIGTERM (Slurm, Kubernetes, a local run stopping its workers) or Ctrl-C: a clean exit, status 0.
            Interruption.install()
            w.shouldStop = { Interruption.caught != 0 }
            w.heartbeat = heartbeat
            w.liveness = liveness
            try w.run()
        }
    }
}

/// `loom collector`: a stand-alone collector.
struct CollectorCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "collector", _superCommandName: "loom",
        abstract: "Collect a job's results into --out for a coordinator started with --collector; exit 0 once the manifest is written.")

    @Option(help: "Where workers and the coordinator connect, e.g. tcp://*:5556 (or $LOOM_COLLECTOR).")
    var bind: String?

    @Option(help: "The results folder.")
    var out: String

    @Flag(help: "Replace the results of a different job in --out.")
    var overwrite = false

    @OptionGroup var keys: KeyOptions

    @OptionGroup var log: LogOptions

    func run() throws {
        log.apply()
        try reportingErrors {
            let bindEndpoint = try endpoint(bind, env: "LOOM_COLLECTOR", what: "--bind")
            let context = try Context()
            // Delivers the collector's last reply (`finished`, or an error) before the process exits.
            defer { context.terminate(waitingAtMost: 2) }
            let logger = log.logger("loom.collector")
            let security = try keys.server(context, endpoints: [bindEndpoint], role: "collector", logger: logger)
            defer { security.zap?.stop() }
            if security.keys != nil, security.coordinatorKey == nil {
                throw ValidationError("a collector with --key needs --coordinator-key: only that key may give it a job")
            }
            let c = Collector(context: context, bind: bindEndpoint, out: out, overwrite: overwrite, logger: logger)
            c.security = security
            c.tick = { AllowReload.serve() }
            // SIGINT and SIGTERM stop it in one line, exit 75, also when a parent started it with them blocked.
            Interruption.install()
            c.shouldStop = { Interruption.caught != 0 }
            try c.run()
            if Interruption.caught != 0 { throw Interruption.exit(out: out) }
        }
    }
}

/// The fault-tolerance settings of a coordinator (and of `loom run --workers N`).
struct FaultOptions: ParsableArguments {
    // Defaults are the core's (`CoordinatorCore.Settings`, `Scheduler.Policy`), defined once there.
    @Option(parsing: .unconditional, help: "Seconds between heartbeats to workers.")
    var heartbeat: Double = CoordinatorCore.Settings().heartbeat

    @Option(parsing: .unconditional, help: "Missed heartbeats after which a worker is declared dead and its shards re-queued.")
    var liveness: Int = CoordinatorCore.Settings().liveness

    @Option(parsing: .unconditional, help: "Seconds a shard may take on a worker before it is given to another.")
    var lease: Double = Scheduler.Policy().lease

    @Option(
        parsing: .unconditional,
        help: "Failed attempts (dead or stalled workers) after which a shard fails the job. A worker that comes back as the same process withdraws its charge.")
    var maxFailures: Int = Scheduler.Policy().maxFailures

    @Option(parsing: .unconditional, help: "Seconds the whole job may take; it fails after that.")
    var deadline: Double?

    @Flag(help: "Do not run the last shards in flight again on idle workers.")
    var noSpeculation = false

    @Option(
        help: ArgumentHelp(
            "Write the job's figures (shards, examples/s, workers, faults, verification) as JSON to this file every 2 s and at the end.", valueName: "path"))
    var statusFile: String?

    @Option(
        help: ArgumentHelp(
            "Serve the same figures as Prometheus metrics at http://ADDRESS/metrics while the job runs: HOST:PORT, :PORT (every interface) or PORT (loopback); port 0 picks a free one.",
            valueName: "address"))
    var metrics: String?

    @Option(
        parsing: .unconditional,
        help: ArgumentHelp(
            "The fraction of shards (0 to 1) to compute again on a second worker and compare bit for bit; a third worker decides a mismatch, and the worker that lost is quarantined.",
            valueName: "fraction"))
    var verify: Double = CoordinatorCore.Settings().verify

    /// Refuses values that would make no sense, or spin: a zero heartbeat, a lease of no time.
    func check() throws {
        try requirePositive(heartbeat, "--heartbeat")
        try requireAtLeastOne(liveness, "--liveness")
        try requirePositive(lease, "--lease")
        try requireAtLeastOne(maxFailures, "--max-failures")
        if let deadline { try requirePositive(deadline, "--deadline") }
        guard verify.isFinite, verify >= 0, verify <= 1 else { throw ValidationError("--verify must be a fraction from 0 to 1 (got \(verify))") }
    }

    func apply(to options: inout Coordinator.Options) {
        options.settings.heartbeat = heartbeat
        options.settings.liveness = max(1, liveness)
        options.settings.policy.lease = lease
        options.settings.policy.maxFailures = max(1, maxFailures)
        options.settings.policy.speculate = !noSpeculation
        options.settings.policy.freshness = heartbeat
        options.settings.deadline = deadline
        options.settings.verify = verify
        options.statusFile = statusFile
    }

    /// Starts `--metrics`' endpoint, before the job loads (a bad address fails at once), and says where it is.
    func startMetrics() throws -> JobMetrics? {
        guard let metrics else { return nil }
        let server = try MetricsServer(metrics)
        try server.start()
        Console.log(level: "notice", "metrics at http://\(server.address)/metrics")
        return server.metrics
    }
}

/// Throws unless `value` is at least 1 (a count, for the option named `flag`).
func requireAtLeastOne(_ value: Int, _ flag: String) throws {
    guard value >= 1 else { throw ValidationError("\(flag) must be at least 1 (got \(value))") }
}

/// Throws unless `value` is a finite number above zero (seconds, for the options named `flag`).
func requirePositive(_ value: Double, _ flag: String) throws {
    guard value.isFinite && value > 0 else { throw ValidationError("\(flag) must be a positive number of seconds (got \(value))") }
}
